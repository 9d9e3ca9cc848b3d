"""The patched timm VisionTransformer: the one block behaviour sttool changes, and one block loop.

``patch_model`` swaps a timm ``VisionTransformer`` to ``SparseViT`` and its ``Block``s to
``SparseBlock`` in place; weights, buffers and state_dict keys are timm's, plus the adapters and
``head_norm`` that sttool adds. Every forward (plain, all exits, early exit, intermediates) runs the
blocks through ``SparseViT.run_blocks``, which also does gradient checkpointing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, cast

import torch
import torch.nn.functional as F
from timm.layers import Attention
from timm.models.deit import VisionTransformerDistilled
from timm.models.vision_transformer import Block, VisionTransformer
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from sttool.errors import SttoolError
from sttool.models.config import ModelConfig
from sttool.models.token_selection import TokenSelection, select_tokens
from sttool.models.video import embed_video

if TYPE_CHECKING:
    from sttool.models.exits import Exits


@dataclass
class ForwardState:
    """Per-forward state shared by the blocks of one model.

    ``history`` holds earlier adapter outputs that later adapters read (the Dense Adapter's cache, or
    the released variant's running stage sum). It is always kept at the current token set: every
    token selection is applied to it, and early-exit compaction restricts it to the surviving samples.
    """

    history: list[Tensor] = field(default_factory=list)
    selections: list[TokenSelection | None] = field(default_factory=list)

    def on_select(self, selection: TokenSelection) -> None:
        """Bring the cached adapter outputs to the token set the block just kept."""
        self.history = [selection.apply(h) for h in self.history]

    def index_select(self, batch_index: Tensor) -> None:
        """Keep only the samples in ``batch_index`` (the ones that did not exit)."""
        self.history = [h[batch_index] for h in self.history]


Score = Literal["cls", "mean", "pool"]


def attend(attn: Attention, x: Tensor, lora: nn.Module | None = None, cls_row: bool = False,
           score: Score = "cls", pool: nn.Module | None = None) -> tuple[Tensor, Tensor | None]:
    """Multi-head self-attention of ``x`` (B, N, C) with timm ``attn``'s weights: a fork of
    ``timm.layers.Attention.forward`` as of timm 1.0.31 (qkv, q/k norms, fused SDPA, norm, proj), plus
    the token scores and LoRA.

    Returns the projected output (B, N, C) and, if ``cls_row``, the token scores (B, N) that token
    selection ranks, head-averaged and post-softmax, by ``score``:

    - ``cls``: the attention of the [CLS] token over all N tokens (EViT, Sparse-Tuning). The output keeps
      using fused scaled-dot-product attention, which never materialises the attention map; the [CLS]
      row is computed on its own: ``softmax(q_cls K^T)`` costs one query against N keys and equals row
      0 of the full map.
    - ``mean``: the attention each token receives, averaged over all queries (ViTs without a class token
      and an average-pooled head: every token is a query of the mean).
    - ``pool``: the attention of the model's attention-pool query over the tokens (SigLIP's MAP head),
      with the pool's own projections applied to this block's normalised tokens.

    ``attn.fused_attn = False`` (timm's own switch) selects the explicit path, for operator-level FLOP
    counting and for reference tests.
    """
    B, N, _ = x.shape
    heads = attn.num_heads
    qkv = attn.qkv(x)  # (B, N, 3 * A)
    if lora is not None:
        qkv = lora(x, qkv)
    q, k, v = qkv.reshape(B, N, 3, heads, -1).permute(2, 0, 3, 1, 4).unbind(0)  # each (B, H, N, d)
    q, k = attn.q_norm(q), attn.k_norm(k)
    row = None
    if attn.fused_attn:
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=attn.attn_drop.p if attn.training else 0.0)
        if cls_row and score == "cls":
            logits = (q[:, :, :1] * attn.scale) @ k.transpose(-2, -1)  # (B, H, 1, N)
            row = logits.float().softmax(dim=-1).mean(dim=1).squeeze(1)  # (B, N)
        elif cls_row and score == "mean":
            logits = (q * attn.scale) @ k.transpose(-2, -1)  # (B, H, N, N)
            row = logits.float().softmax(dim=-1).mean(dim=(1, 2))  # (B, N): received, averaged over heads and queries
    else:
        weights = ((q * attn.scale) @ k.transpose(-2, -1)).softmax(dim=-1)  # (B, H, N, N)
        weights = attn.attn_drop(weights)
        out = weights @ v  # (B, H, N, d)
        if cls_row and score == "cls":
            row = weights[:, :, 0].float().mean(dim=1)  # (B, N)
        elif cls_row and score == "mean":
            row = weights.float().mean(dim=(1, 2))  # (B, N)
    if cls_row and score == "pool":
        assert pool is not None
        row = pool_scores(pool, x)
    out = out.transpose(1, 2).reshape(B, N, -1)  # (B, N, A)
    norm = getattr(attn, "norm", None)
    if norm is not None:
        out = norm(out)
    return attn.proj_drop(attn.proj(out)), row


def pool_scores(pool: nn.Module, x: Tensor) -> Tensor:
    """The head-averaged attention (B, N) of an ``AttentionPoolLatent``'s latent query over tokens ``x`` (B, N, C)."""
    pool_any: Any = pool
    B, N, C = x.shape
    heads, dim = pool_any.num_heads, pool_any.head_dim
    q = pool_any.q(pool_any.latent.expand(B, -1, -1)).reshape(B, -1, heads, dim).transpose(1, 2)  # (B, H, L, d)
    kv = pool_any.kv  # keys are the first C outputs (timm splits kv as (2, heads, head_dim))
    keys = F.linear(x, kv.weight[:C], None if kv.bias is None else kv.bias[:C])  # (B, N, C)
    k = keys.reshape(B, N, heads, dim).transpose(1, 2)  # (B, H, N, d)
    q, k = pool_any.q_norm(q), pool_any.k_norm(k)
    return ((q * pool_any.scale) @ k.transpose(-2, -1)).float().softmax(dim=-1).mean(dim=(1, 2))  # (B, N)


class SparseBlock(Block):
    """Pre-norm block: attention, token selection (pruning blocks only), then MLP beside an adapter.

    Attributes set by ``patch_model``: ``keep_rate`` (None: this block keeps every token),
    ``fuse_token``, ``num_prefix``, ``adapter`` and ``lora`` (None when unused).
    """

    keep_rate: float | None
    fuse_token: bool
    num_prefix: int
    score: Score = "cls"  # how the pruning blocks rank tokens (see ``attend``)
    adapter: nn.Module | None
    lora: nn.Module | None

    attn: Attention

    def forward(self, x: Tensor, attn_mask: Tensor | None = None, is_causal: bool = False,
                state: ForwardState | None = None) -> Tensor:
        """A fork of ``timm.models.vision_transformer.Block.forward`` as of timm 1.0.31 (pre-norm attention
        and MLP with layer scale and drop path), with token selection after attention and the adapter."""
        if attn_mask is not None or is_causal:
            raise SttoolError("attn_mask and is_causal are not supported by sttool's blocks: token selection changes the tokens")
        if state is None:
            if self.adapter is not None or self.keep_rate is not None:
                raise SttoolError("an sttool block needs its model's ForwardState (its adapter reads earlier blocks); "
                                  "call the model, not the block alone")
            state = ForwardState()
        prunes = self.keep_rate is not None
        attn_out, cls_attn = attend(self.attn, self.norm1(x), self.lora, cls_row=prunes, score=self.score,
                                    pool=self.__dict__.get("pool"))
        x = x + self.drop_path1(self.ls1(attn_out))  # (B, N, C)
        selection = None
        if self.keep_rate is not None:
            assert cls_attn is not None
            selection = select_tokens(cls_attn, self.keep_rate, self.num_prefix, self.fuse_token)
            if selection is not None:
                x = selection.apply(x)  # (B, N', C)
                state.on_select(selection)
        state.selections.append(selection)
        out = x + self.drop_path2(self.ls2(self.mlp(self.norm2(x))))
        if self.adapter is not None:
            out = out + self.adapter(x, state)
        return out


# ``after(block index, tokens, state)`` -> tokens to go on with (the same, or fewer samples), or None to stop
AfterBlock = Callable[[int, Tensor, ForwardState], Tensor | None]


class SparseViT(VisionTransformer):
    """A timm ViT running ``SparseBlock``s. Never constructed directly: made by ``patch_model``.

    The head follows the official code: the final [CLS] token, BatchNorm without affine parameters
    (``head_norm``; Identity for ``head='linear'``), then the Linear ``head``.
    """

    sttool_config: ModelConfig
    head_norm: nn.Module
    exits: Exits  # only with exit_layers

    def sparse_blocks(self) -> list[SparseBlock]:
        """The blocks, typed as what ``patch_model`` made them."""
        return cast(list[SparseBlock], list(self.blocks))

    def set_keep_rate(self, rate: float) -> None:
        """Make the pruning blocks (``keep_layers``) keep ``rate`` of their candidates (1: every token)."""
        blocks = self.sparse_blocks()
        for layer in self.sttool_config.keep_layers:
            blocks[layer - 1].keep_rate = None if rate >= 1.0 else rate

    def embed(self, x: Tensor) -> Tensor:
        """Patch embedding, prefix tokens and position embedding: images (B, 3, H, W) -> (B, N, C).

        A video model (``num_frames`` set) takes clips (B, 3, T, H, W) and embeds space-time tokens.
        """
        if getattr(self, "time_embed", None) is not None:
            return embed_video(self, x)
        x = self.patch_embed(x)
        x = self._pos_embed(x)
        x = self.patch_drop(x)
        return self.norm_pre(x)

    def initial_state(self, tokens: Tensor) -> ForwardState:
        """State before block 1: the released variant re-adds the embedding at its first stage end."""
        return ForwardState(history=[tokens] if self.sttool_config.spec.adapter == "stage" else [])

    def run_blocks(self, tokens: Tensor, state: ForwardState, after: AfterBlock | None = None,
                   last: int | None = None) -> Tensor | None:
        """The block loop of every forward: blocks 0..``last`` on ``tokens`` (B, N, C), ``after`` called
        after each one. With ``set_grad_checkpointing()`` and gradients on, each block's activations are
        recomputed in the backward pass instead of being stored (the block sees a copy of the state,
        so recomputing it changes nothing outside)."""
        for index, block in enumerate(self.sparse_blocks()):
            if last is not None and index > last:
                break
            if self.grad_checkpointing and torch.is_grad_enabled():
                tokens = self._checkpointed(block, tokens, state)
            else:
                tokens = block(tokens, state=state)
            if after is not None:
                result = after(index, tokens, state)
                if result is None:
                    return None
                tokens = result
        return tokens

    @staticmethod
    def _checkpointed(block: nn.Module, tokens: Tensor, state: ForwardState) -> Tensor:
        def step(x: Tensor, *history: Tensor) -> tuple[Tensor, ...]:
            inner = ForwardState(history=list(history))
            return (block(x, state=inner), *inner.history)

        outputs = checkpoint(step, tokens, *state.history, use_reentrant=False)
        state.history = list(outputs[1:])
        state.selections.append(None)  # recomputed in the backward pass; not kept while training
        return outputs[0]

    def forward_features(self, x: Tensor, attn_mask: Tensor | None = None, is_causal: bool = False,
                         state: ForwardState | None = None) -> Tensor:
        """Tokens after the final norm (B, N_last, C); ``state`` receives the selections if given. Follows
        ``VisionTransformer.forward_features`` as of timm 1.0.31, with sttool's block loop."""
        if attn_mask is not None or is_causal:
            raise SttoolError("attn_mask and is_causal are not supported: token selection changes the tokens")
        x = self.embed(x)
        given = state
        state = self.initial_state(x)
        if given is not None:
            given.history, given.selections = state.history, state.selections
            state = given
        tokens = self.run_blocks(x, state)
        assert tokens is not None
        return self.norm(tokens)

    def pool_tokens(self, x: Tensor) -> Tensor:
        """timm's own pooling (``VisionTransformer.pool``): the [CLS] token, the mean of the other tokens, or
        the attention pool (B, C); after pruning, the fused token is one of the others."""
        return self.pool(x)

    def head_logits(self, features: Tensor) -> Tensor:
        """The classifier on pooled features (B, C) -> (B, K): head_norm, dropout, Linear."""
        return self.head(self.head_drop(self.head_norm(features)))

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        features = self.fc_norm(self.pool_tokens(x))  # (B, C)
        return self.head_drop(self.head_norm(features)) if pre_logits else self.head_logits(features)

    def forward(self, x: Tensor, attn_mask: Tensor | None = None, is_causal: bool = False) -> Tensor:
        return self.forward_head(self.forward_features(x, attn_mask=attn_mask, is_causal=is_causal))

    def forward_exits(self, x: Tensor) -> list[tuple[Tensor, Tensor]]:
        """(features, logits) of every exit for every sample, the final head last (training, anytime)."""
        exits = self.exits
        tokens = self.embed(x)
        outputs: list[tuple[Tensor, Tensor]] = []

        def collect(index: int, tokens: Tensor, state: ForwardState) -> Tensor:
            if index in exits.blocks:
                outputs.append(exits(exits.blocks.index(index), tokens, self.num_prefix_tokens))
            return tokens

        final = self.run_blocks(tokens, self.initial_state(tokens), collect)
        assert final is not None  # ``collect`` never stops the loop
        final = self.norm(final)
        outputs.append((self.fc_norm(self.pool_tokens(final)), self.forward_head(final)))  # (B, C), (B, K)
        return outputs

    def forward_intermediates(self, x: Tensor, indices: int | list[int] | None = None, return_prefix_tokens: bool = False,
                              norm: bool = False, stop_early: bool = False, output_fmt: str = "NCHW",
                              intermediates_only: bool = False, output_dict: bool = False,
                              attn_mask: Tensor | None = None, is_causal: bool = False):
        """timm's ``forward_intermediates`` through sttool's block loop (adapters see their history).

        A token grid exists only while every patch token is kept: after a pruning block, ``NCHW`` is
        refused with a one-line error; ``NLC`` gives the kept tokens (and the fused one) as they are.
        """
        from timm.models._features import feature_take_indices

        if attn_mask is not None or is_causal:
            raise SttoolError("attn_mask and is_causal are not supported: token selection changes the tokens")
        if output_fmt not in ("NCHW", "NLC"):
            raise SttoolError(f"forward_intermediates: output_fmt '{output_fmt}' is not NCHW or NLC")
        take, max_index = feature_take_indices(len(self.blocks), indices)
        first_prune = min((i for i, b in enumerate(self.sparse_blocks()) if b.keep_rate is not None), default=None)
        if output_fmt == "NCHW" and first_prune is not None and max(take) >= first_prune:
            raise SttoolError(f"forward_intermediates: block {first_prune + 1} prunes tokens, so later blocks have no "
                              f"{self.patch_embed.grid_size} grid; ask for output_fmt='NLC' or earlier indices")
        if getattr(self, "time_embed", None) is not None and output_fmt == "NCHW":
            raise SttoolError("forward_intermediates: a video model's space-time tokens have no NCHW grid; use output_fmt='NLC'")
        tokens = self.embed(x)
        picked: list[Tensor] = []

        def keep(index: int, tokens: Tensor, state: ForwardState) -> Tensor:
            if index in take:
                picked.append(self.norm(tokens) if norm else tokens)
            return tokens

        final = self.run_blocks(tokens, self.initial_state(tokens), keep, last=max_index if stop_early else None)
        assert final is not None
        prefix = [y[:, : self.num_prefix_tokens] for y in picked]
        picked = [y[:, self.num_prefix_tokens :] for y in picked]
        if output_fmt == "NCHW":
            H, W = self.patch_embed.grid_size
            picked = [y.reshape(y.shape[0], H, W, -1).permute(0, 3, 1, 2).contiguous() for y in picked]  # (B, C, H, W)
        if output_dict:
            result = {"image_intermediates": picked}
            if return_prefix_tokens:
                result["image_intermediates_prefix"] = prefix
            if not intermediates_only:
                result["image_features"] = self.norm(final)
            return result
        items = list(zip(picked, prefix, strict=True)) if return_prefix_tokens else picked
        return items if intermediates_only else (self.norm(final), items)


class SparseViTDistilled(SparseViT, VisionTransformerDistilled):
    """The distilled DeiT patched: the [CLS] and distillation tokens are both prefix tokens, never pruned;
    the two heads are averaged as timm does at inference (timm's separate distillation-training output is
    not used: sttool tunes on labels)."""

    head_dist_norm: nn.Module  # the distillation token's head norm, as ``head_norm`` is the [CLS] token's

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        token, distilled = x[:, 0], x[:, 1]  # (B, C) each
        token = self.head_drop(self.head_norm(token))
        distilled = self.head_drop(self.head_dist_norm(distilled))
        if pre_logits:
            return (token + distilled) / 2
        return (self.head(token) + self.head_dist(distilled)) / 2
