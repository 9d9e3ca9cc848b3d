"""Build a Sparse-Tuning model from names, or patch an existing timm ViT in place."""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

import torch
from timm.layers import Attention
from timm.models.vision_transformer import Block, VisionTransformer
from torch import nn

from sttool.config.schema import closest
from sttool.errors import SttoolError
from sttool.models.adaptformer import ParallelAdapter
from sttool.models.block import SparseBlock
from sttool.models.config import ModelConfig
from sttool.models.dense_adapter import DenseAdapter
from sttool.models.exits import Exits
from sttool.models.lora import LoRAQV
from sttool.models.stage_adapter import StageAdapter, stage_ends
from sttool.models.video import make_video_model
from sttool.models.vit import SparseViT
from sttool.models.weights import HOW_TO_GIVE_WEIGHTS, load_local_weights

DEFAULT_CLASSES = 1000  # the head's size when neither the recipe nor the backbone says


def _check_patchable(model: nn.Module) -> None:
    if isinstance(model, SparseViT):
        raise SttoolError("this model is already patched by sttool; patch a fresh timm model")
    if not isinstance(model, VisionTransformer):
        raise SttoolError(f"sttool patches timm VisionTransformer models (vit_*, deit_*), not {type(model).__name__}")
    if model.cls_token is None:
        raise SttoolError("token sparsification scores tokens by [CLS] attention; this ViT has no class token")
    if model.global_pool not in ("token", "avg") or getattr(model, "attn_pool", None) is not None:
        raise SttoolError(f"global_pool '{model.global_pool}' is not supported; valid: token, avg")
    for index, block in enumerate(model.blocks):
        if type(block) is not Block or not isinstance(block.attn, Attention):
            raise SttoolError(f"block {index + 1} is a {type(block).__name__}; sttool supports timm's standard ViT Block")
        if getattr(block.attn, "gate", None) is not None:
            raise SttoolError(f"block {index + 1} uses gated attention, which sttool does not support")


def _make_adapter(config: ModelConfig, dim: int, index: int, depth: int, ends: list[int]) -> nn.Module | None:
    kind = config.spec.adapter
    if kind == "dense":
        return DenseAdapter(dim, index, config.bottleneck, config.adapter_scale)
    if kind == "stage":
        return StageAdapter(dim, config.bottleneck, in_stage_sum=index < depth - 1, closes_stage=index in ends)
    if kind == "parallel":
        return ParallelAdapter(dim, config.bottleneck, config.adapter_scale, config.adapter_dropout)
    return None


def init_head(model: VisionTransformer) -> None:
    """The official code's head initialisation (MAE linear probe): weights N(0, 0.01), bias 0."""
    if isinstance(model.head, nn.Linear):
        nn.init.trunc_normal_(model.head.weight, std=0.01)
        nn.init.zeros_(model.head.bias)


def patch_model(model: VisionTransformer, config: ModelConfig | None = None, **options: Any) -> SparseViT:
    """Turn a timm ``VisionTransformer`` into a Sparse-Tuning model in place and return it.

    ``options`` are ``ModelConfig`` fields (method, keep_rate, keep_layers, bottleneck, ...). The
    backbone is frozen except what the method trains; timm's state_dict keys are unchanged.
    """
    _check_patchable(model)
    try:
        config = replace(config or ModelConfig(), **options)
    except TypeError as err:
        raise SttoolError(f"patch_model: {err}") from None
    if config.num_classes is None:
        config = replace(config, num_classes=model.num_classes or DEFAULT_CLASSES)
    config = config.resolved()
    depth = len(model.blocks)
    config.check_depth(depth)
    prune_blocks = sorted(layer - 1 for layer in config.keep_layers)
    ends = stage_ends(depth, prune_blocks)
    dim = model.embed_dim
    for index, block in enumerate(model.blocks):
        block.__class__ = SparseBlock
        block.keep_rate = config.keep_rate if index in prune_blocks and config.keep_rate < 1.0 else None
        block.fuse_token = config.fuse_token
        block.num_prefix = model.num_prefix_tokens
        block.adapter = _make_adapter(config, dim, index, depth, ends)
        attn_dim = block.attn.qkv.out_features // 3
        block.lora = LoRAQV(dim, attn_dim, config.lora_rank, config.lora_alpha) if config.spec.adapter == "lora" else None
    model.__class__ = SparseViT
    model.sttool_config = config
    if model.num_classes != config.num_classes:
        model.reset_classifier(config.num_classes)
        init_head(model)
    model.head_norm = nn.BatchNorm1d(dim, affine=False, eps=1e-6) if config.head == "bn_linear" else nn.Identity()
    if config.num_frames is not None:
        make_video_model(model, config.num_frames, config.tubelet)
    if config.exit_layers:
        model.exits = Exits(dim, [layer - 1 for layer in config.exit_layers], config.exit_bottleneck,
                            config.num_classes, config.head == "bn_linear", config.exit_pool)
    _set_trainable(model, config.spec.trains)
    return model


def _set_trainable(model: SparseViT, trains: str) -> None:
    for param in model.parameters():
        param.requires_grad = trains == "all"
    if trains == "all":
        return
    trained: list[nn.Module] = [model.head, getattr(model, "exits", nn.Identity())]
    if trains == "adapters":
        for block in model.blocks:
            trained += [m for m in (block.adapter, block.lora) if m is not None]
    for module in trained:
        for param in module.parameters():
            param.requires_grad = True
    time_embed = getattr(model, "time_embed", None)
    if time_embed is not None:  # new for video, so learned by every method that trains more than the head
        time_embed.requires_grad = trains == "adapters"


def trainable_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The parameters the optimiser updates (everything with ``requires_grad``)."""
    return [p for p in model.parameters() if p.requires_grad]


def create_backbone(config: ModelConfig) -> VisionTransformer:
    """The timm ViT named by ``config.backbone``, with its weights (hub, local file, or none)."""
    import timm

    kwargs: dict[str, Any] = {"num_classes": config.num_classes or DEFAULT_CLASSES, "drop_path_rate": config.drop_path}
    if config.img_size is not None:
        kwargs["img_size"] = config.img_size
    source = config.weights
    hub = source is not None and source.lower() == "hub"
    try:
        model = timm.create_model(config.backbone, pretrained=hub, **kwargs)
    except RuntimeError as err:
        if "Unknown model" in str(err):
            name = config.backbone.split(".")[0]
            raise SttoolError(f"model.backbone: unknown timm model '{config.backbone}'; {closest(name, timm.list_models('*vit*'))}; list them with timm.list_models('vit*')") from None
        if hub:
            raise _hub_error(config.backbone, err) from None
        raise
    except Exception as err:  # huggingface_hub raises connection, offline and cache errors of many types
        if hub:
            raise _hub_error(config.backbone, err) from None
        raise
    if not isinstance(model, VisionTransformer):
        raise SttoolError(f"model.backbone: '{config.backbone}' is a {type(model).__name__}; sttool needs a timm VisionTransformer")
    loaded: set[str] = set(model.state_dict()) if hub else set()
    if source is not None and not hub and source.lower() != "none":
        loaded = load_local_weights(model, source)
    if "head.weight" not in loaded:
        init_head(model)
    return model


def _hub_error(name: str, err: Exception) -> SttoolError:
    offline = " (HF_HUB_OFFLINE is set)" if os.environ.get("HF_HUB_OFFLINE") else ""
    return SttoolError(f"cannot fetch weights for '{name}' from the Hugging Face hub{offline}: {type(err).__name__}; {HOW_TO_GIVE_WEIGHTS}")


def build_model(backbone: str | None = None, config: ModelConfig | None = None, **options: Any) -> SparseViT:
    """Create a timm backbone with its weights and patch it: ``build_model("vit_base_patch16_224", method="lora")``."""
    config = config or ModelConfig()
    if backbone is not None:
        options["backbone"] = backbone
    try:
        config = replace(config, **options)
    except TypeError as err:
        raise SttoolError(f"build_model: {err}") from None
    config.check()
    model = create_backbone(config)
    return patch_model(model, config)


@torch.no_grad()
def count_parameters(model: nn.Module) -> dict[str, int]:
    """Total and trainable parameter counts; ``adapter`` excludes the classification head."""
    head = {id(p) for p in getattr(model, "head", nn.Identity()).parameters()}
    trainable = [p for p in model.parameters() if p.requires_grad]
    return {
        "total": sum(p.numel() for p in model.parameters()),
        "trainable": sum(p.numel() for p in trainable),
        "trainable_no_head": sum(p.numel() for p in trainable if id(p) not in head),
    }
