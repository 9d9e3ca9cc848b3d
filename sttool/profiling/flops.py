"""Analytic GFLOPs of a (patched or plain) timm ViT, in multiply-adds as the papers count them, and the
report of a configuration beside its dense backbone (GFLOPs, tokens per stage, parameters).

Conventions follow fvcore, which the papers used (dense ViT-B/16 at 224 = 17.58 G): one multiply-add
is one FLOP; Linear and convolution layers count in x out per token; attention counts its two matrix
products (N^2 * A each); LayerNorm counts 5 per element, BatchNorm without affine 1 per element in
eval; element-wise additions, GELU and softmax count nothing. On top, sttool counts what it runs:
the token scores (the separate [CLS] attention row, N * A; or the mean attention received, N^2 * A; or an
attention pool's query) and each fused token (a weighted sum over the dropped tokens,
M * C per tensor it is applied to). The count is exact for fixed keep rates; no forward pass is run.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import nn

from sttool.config.schema import to_dict
from sttool.models.build import build_model, count_parameters
from sttool.models.config import ModelConfig
from sttool.models.token_selection import tokens_after


@dataclass
class FlopCount:
    """Multiply-adds of one forward pass of one input, by part, with the token schedule."""

    by_part: dict[str, int] = field(default_factory=dict)
    tokens_in: list[int] = field(default_factory=list)  # tokens entering each block
    tokens_out: list[int] = field(default_factory=list)  # tokens after each block's selection
    per_block: list[int] = field(default_factory=list)  # multiply-adds of each block
    before_blocks: int = 0  # embedding
    after_blocks: int = 0  # final norm and head
    exit_blocks: list[int] = field(default_factory=list)  # 0-based blocks followed by an early exit
    exit_costs: list[int] = field(default_factory=list)  # multiply-adds of each early exit (not in ``total``)
    include_norms: bool = True  # False: matrix products only, as operator-level counters see them

    def norm(self, layer: nn.Module, tokens: int, dim: int) -> int:
        return norm_macs(layer, tokens, dim) if self.include_norms else 0

    def add(self, part: str, macs: int) -> int:
        self.by_part[part] = self.by_part.get(part, 0) + macs
        return macs

    @property
    def total(self) -> int:
        return sum(self.by_part.values())

    @property
    def gflops(self) -> float:
        return self.total / 1e9

    def cost_to_exit(self) -> list[int]:
        """Cumulative multiply-adds of a sample leaving at each exit, the final head last.

        Every exit reached on the way is evaluated, so its cost counts for every later exit too.
        """
        costs = []
        for k, block in enumerate(self.exit_blocks):
            costs.append(self.before_blocks + sum(self.per_block[: block + 1]) + sum(self.exit_costs[: k + 1]))
        return [*costs, self.total + sum(self.exit_costs)]

    @property
    def tokens_per_stage(self) -> list[int]:
        """Token count of the first block, then after every block that changed it."""
        stages = self.tokens_in[:1]
        for count in self.tokens_out:
            if count != stages[-1]:
                stages.append(count)
        return stages


def linear_macs(layer: nn.Module, tokens: int) -> int:
    """Multiply-adds of every Linear inside ``layer`` applied to ``tokens`` tokens."""
    return sum(tokens * m.in_features * m.out_features for m in layer.modules() if isinstance(m, nn.Linear))


def norm_macs(layer: nn.Module, tokens: int, dim: int) -> int:
    """fvcore's count for LayerNorm (5 per element, 4 without affine); Identity counts 0."""
    if isinstance(layer, nn.LayerNorm):
        return tokens * dim * (5 if layer.elementwise_affine else 4)
    if isinstance(layer, nn.BatchNorm1d):
        return tokens * dim * (2 if layer.affine else 1)
    return 0


def conv_macs(conv: Any, outputs: int) -> int:
    """Multiply-adds of a convolution producing ``outputs`` output positions (fvcore: out x in x kernel / groups)."""
    kernel = 1
    for size in conv.kernel_size:
        kernel *= size
    return outputs * conv.out_channels * conv.in_channels * kernel // conv.groups


def embed_macs(embed: Any, patches: int) -> int:
    """The patch embedding: ``proj`` on every token position, and a convolutional stem (if any) on every
    frame before it. A stem's convolutions run in order; each output size follows from stride and padding."""
    macs = conv_macs(embed.proj, patches)
    stem = getattr(embed, "stem", None)
    if stem is None:
        return macs
    frames = getattr(embed, "time_size", 1) * embed.proj.kernel_size[0] if isinstance(embed.proj, nn.Conv3d) else 1
    height, width = embed.img_size
    for conv in (m for m in stem.modules() if isinstance(m, nn.Conv2d)):
        height = (height + 2 * conv.padding[0] - conv.dilation[0] * (conv.kernel_size[0] - 1) - 1) // conv.stride[0] + 1
        width = (width + 2 * conv.padding[1] - conv.dilation[1] * (conv.kernel_size[1] - 1) - 1) // conv.stride[1] + 1
        macs += frames * conv_macs(conv, height * width)
    return macs


def _history_length(kind: str, index: int, stage_closers: set[int]) -> int:
    """How many earlier adapter outputs a block's token selection must also be applied to."""
    if kind == "dense":
        return min(index, 3)
    if kind == "stage":
        return int(index == 0 or (index - 1) not in stage_closers)
    return 0


def count_flops(model: Any, num_patches: int | None = None, include_norms: bool = True) -> FlopCount:
    """Multiply-adds of ``model`` (a timm ViT, patched by sttool or not) for one input."""
    count = FlopCount(include_norms=include_norms)
    dim = model.embed_dim
    patches = num_patches if num_patches is not None else model.patch_embed.num_patches
    count.before_blocks = count.add("patch_embed", embed_macs(model.patch_embed, patches))
    prefix = model.num_prefix_tokens
    tokens = patches + prefix
    blocks = list(model.blocks)
    kinds = [type(getattr(b, "adapter", None)).__name__ for b in blocks]
    kind = {"DenseAdapter": "dense", "StageAdapter": "stage"}.get(kinds[0], "other")
    closers = {i for i, b in enumerate(blocks) if getattr(getattr(b, "adapter", None), "closes_stage", False)}
    for index, block in enumerate(blocks):
        count.tokens_in.append(tokens)
        macs = _block_macs(count, block, tokens, dim, _history_length(kind, index, closers))
        keep_rate = getattr(block, "keep_rate", None)
        if keep_rate is not None:
            tokens = tokens_after(tokens, keep_rate, prefix, block.fuse_token)
        macs += _post_selection_macs(count, block, tokens, dim)
        count.tokens_out.append(tokens)
        count.per_block.append(macs)
    after = count.add("norm", count.norm(model.norm, tokens, dim))
    after += count.add("head", count.norm(model.fc_norm, 1, dim) + count.norm(getattr(model, "head_norm", nn.Identity()), 1, dim))
    pool = getattr(model, "attn_pool", None)
    if pool is not None:
        after += count.add("head", _attention_pool_macs(count, pool, tokens, dim))
    head_dist = getattr(model, "head_dist", None)
    if head_dist is not None:  # the distilled DeiT's second head, on the distillation token
        after += count.add("head", linear_macs(head_dist, 1) + count.norm(getattr(model, "head_dist_norm", nn.Identity()), 1, dim))
    count.after_blocks = after + count.add("head", linear_macs(model.head, 1))
    exits = getattr(model, "exits", None)
    if exits is not None:
        count.exit_blocks = list(exits.blocks)
        shared = linear_macs(exits.shared, 1)
        count.exit_costs = [
            count.norm(h.norm, 1, dim) + shared + count.norm(h.head_norm, 1, dim) + linear_macs(h.head, 1) for h in exits.heads
        ]
    return count


def _block_macs(count: FlopCount, block: Any, tokens: int, dim: int, history: int) -> int:
    """Multiply-adds of a block up to and including its token selection, on ``tokens`` tokens."""
    attn = block.attn
    attn_dim = attn.qkv.out_features // 3
    macs = count.add("norm", count.norm(block.norm1, tokens, dim))
    macs += count.add("attention", linear_macs(attn.qkv, tokens) + 2 * tokens * tokens * attn_dim)
    macs += count.add("attention", count.norm(getattr(attn, "norm", nn.Identity()), tokens, attn_dim))
    macs += count.add("attention", linear_macs(attn.proj, tokens))
    lora = getattr(block, "lora", None)
    if lora is not None:
        macs += count.add("adapters", linear_macs(lora, tokens))
    if getattr(block, "keep_rate", None) is not None:
        prefix = block.num_prefix
        if tokens_after(tokens, block.keep_rate, prefix, block.fuse_token) != tokens:
            macs += _score_macs(count, block, tokens, dim, attn_dim)
            if block.fuse_token:
                macs += count.add("selection", (1 + history) * (tokens - prefix) * dim)
    return macs


def _score_macs(count: FlopCount, block: Any, tokens: int, dim: int, attn_dim: int) -> int:
    """The token scores a pruning block ranks by: the [CLS] row (one query, N keys), the mean attention
    received (the fused path computes the N x N map again), or the attention pool's query (its keys on
    every token, then one query per latent)."""
    score = getattr(block, "score", "cls")
    if score == "mean":
        return count.add("selection score", tokens * tokens * attn_dim)
    if score == "pool":
        pool = block.__dict__["pool"]
        latents = pool.latent.shape[1]
        return count.add("selection", tokens * dim * dim + linear_macs(pool.q, latents) + latents * tokens * dim)
    return count.add("selection", tokens * attn_dim)


def _attention_pool_macs(count: FlopCount, pool: Any, tokens: int, dim: int) -> int:
    """timm's ``AttentionPoolLatent`` head: latent queries attend over ``tokens`` tokens, then its MLP."""
    latents = pool.latent.shape[1]
    macs = linear_macs(pool.q, latents) + linear_macs(pool.kv, tokens) + 2 * latents * tokens * dim
    macs += linear_macs(pool.proj, latents) + linear_macs(pool.mlp, latents)
    return macs + count.norm(pool.norm, latents, dim)


def _post_selection_macs(count: FlopCount, block: Any, tokens: int, dim: int) -> int:
    """Multiply-adds of the MLP and the adapter beside it, on the kept ``tokens``."""
    macs = count.add("norm", count.norm(block.norm2, tokens, dim))
    mlp_norm = getattr(block.mlp, "norm", nn.Identity())
    macs += count.add("mlp", linear_macs(block.mlp, tokens) + count.norm(mlp_norm, tokens, getattr(mlp_norm, "normalized_shape", (0,))[0]))
    adapter = getattr(block, "adapter", None)
    if adapter is not None:
        macs += count.add("adapters", linear_macs(adapter, tokens))
    return macs


def model_figures(model: torch.nn.Module) -> dict[str, Any]:
    """GFLOPs (multiply-adds), tokens per stage and parameter counts of one built model."""
    flops = count_flops(model)
    params = count_parameters(model)
    return {
        "gflops": flops.gflops,
        "tokens_per_stage": flops.tokens_per_stage,
        "gflops_by_part": {part: macs / 1e9 for part, macs in flops.by_part.items()},
        "params_total": params["total"],
        "params_trainable": params["trainable"],
        "params_trainable_no_head": params["trainable_no_head"],
    }


def baseline_config(config: ModelConfig, method: str) -> ModelConfig:
    """The same backbone and input with another method at that method's own defaults, without exits."""
    return replace(config, method=method, keep_rate=None, bottleneck=None, adapter_scale=None,
                   adapter_dropout=None, exit_layers=[], weights=None)


def gflops_report(config: ModelConfig) -> dict[str, Any]:
    """Figures of ``config``'s model and of the dense backbone it is built on (same input, no
    sparsification, no adapters, no exits: full fine-tuning's model).

    Models are built on the meta device: shapes only, no weights are created or downloaded.
    """
    config = replace(config, weights=None)
    with torch.device("meta"):
        model = build_model(config=config)
        dense = build_model(config=baseline_config(config, "full"))
    figures = model_figures(model)
    dense_figures = model_figures(dense)
    return {
        **figures,
        "dense_gflops": dense_figures["gflops"],
        "gflops_ratio": figures["gflops"] / dense_figures["gflops"],
        "dense": dense_figures,
        "model": to_dict(model.sttool_config),
    }
