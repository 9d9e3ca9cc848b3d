"""Build a Sparse-Tuning model from names, or patch an existing timm ViT in place; backbone weights from
the timm hub (online) or a local file (.npz, .pth, .safetensors), offline.

Local files are read without running pickled code: safetensors, or ``torch.load(weights_only=True)``;
JAX ``.npz`` files go through timm's own loader (NumPy arrays, no pickle).
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import torch
from timm.layers import Attention
from timm.models.deit import VisionTransformerDistilled
from timm.models.vision_transformer import Block, VisionTransformer, checkpoint_filter_fn
from torch import Tensor, nn

from sttool.config.schema import closest
from sttool.errors import SttoolError
from sttool.models.baselines import LoRAQV, ParallelAdapter
from sttool.models.config import ModelConfig
from sttool.models.dense_adapter import DenseAdapter, StageAdapter, stage_ends
from sttool.models.exits import Exits
from sttool.models.video import make_video_model
from sttool.models.vit import Score, SparseBlock, SparseViT, SparseViTDistilled

DEFAULT_CLASSES = 1000  # the head's size when neither the recipe nor the backbone says

WEIGHT_SUFFIXES = (".npz", ".pth", ".pt", ".bin", ".safetensors")
HEAD_KEYS = ("head.weight", "head.bias")

HOW_TO_GIVE_WEIGHTS = (
    "give a local file with weights=PATH (.npz, .pth or .safetensors, e.g. the original "
    "ViT-B_16.npz), or weights=none for random initialisation"
)


def read_state_dict(path: Path) -> dict[str, Tensor]:
    """A flat state dict from a .safetensors or torch file, unwrapping the usual checkpoint keys."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except Exception as err:  # safetensors raises its own error types for corrupt headers
            raise SttoolError(f"weights file {path}: not a readable safetensors file ({err})") from None
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle errors, truncated zip archives, tensors of unknown types
        raise SttoolError(f"weights file {path}: cannot be read as a weights-only torch checkpoint ({err})") from None
    for key in ("state_dict_ema", "model_ema", "model", "state_dict", "module"):
        if isinstance(data, dict) and isinstance(data.get(key), dict):
            data = data[key]
            break
    if not isinstance(data, dict) or not all(isinstance(v, Tensor) for v in data.values()):
        raise SttoolError(f"weights file {path}: holds no state dict of tensors")
    return data


def load_local_weights(model: VisionTransformer, source: str) -> set[str]:
    """Load backbone weights from ``source`` into ``model``; returns the keys that were loaded.

    The classifier is skipped when its shape differs (a 21k-class checkpoint into a 100-class model).
    Any other missing or misshapen key is an error naming it.
    """
    path = Path(source).expanduser()
    if not path.is_file():
        raise SttoolError(f"weights file not found: {source} (valid: a path to {', '.join(WEIGHT_SUFFIXES)}, 'hub' or 'none')")
    if path.suffix not in WEIGHT_SUFFIXES:
        raise SttoolError(f"weights file {source}: unknown type '{path.suffix}'; valid: {', '.join(WEIGHT_SUFFIXES)}")
    if path.suffix == ".npz":
        head_before = {k: v.clone() for k, v in model.state_dict().items() if k in HEAD_KEYS}
        try:
            model.load_pretrained(str(path))
        except Exception as err:  # timm's npz loader raises KeyError/RuntimeError/ValueError on a mismatch
            raise SttoolError(f"weights file {source} does not fit this backbone: {type(err).__name__}: {err}") from None
        head_loaded = any(not torch.equal(head_before[k], model.state_dict()[k]) for k in head_before)
        return {k for k in model.state_dict() if head_loaded or k not in HEAD_KEYS}
    state = checkpoint_filter_fn(read_state_dict(path), model)
    expected = model.state_dict()
    for key in HEAD_KEYS:
        if key in state and (key not in expected or state[key].shape != expected[key].shape):
            del state[key]
    for key, value in state.items():
        if key in expected and value.shape != expected[key].shape:
            raise SttoolError(
                f"weights file {source} does not fit this backbone: '{key}' has shape {tuple(value.shape)} "
                f"in the file but {tuple(expected[key].shape)} in the model"
            )
    unexpected = sorted(k for k in state if k not in expected)
    missing = sorted(k for k in expected if k not in state and k not in HEAD_KEYS)
    if missing or unexpected:
        detail = f"missing {missing[:3]}" if missing else f"unexpected {unexpected[:3]}"
        raise SttoolError(f"weights file {source} does not fit this backbone: {detail} ({len(missing)} missing, {len(unexpected)} unexpected keys)")
    model.load_state_dict(state, strict=False)
    return set(state)


def _check_patchable(model: nn.Module) -> None:
    if isinstance(model, SparseViT):
        raise SttoolError("this model is already patched by sttool; patch a fresh timm model")
    if type(model).__name__ == "Eva":
        raise SttoolError("timm's Eva class (EVA-02, the RoPE ViTs) is not supported: its rotary position embedding "
                          "would have to follow the kept tokens in every later block; use a VisionTransformer backbone")
    if type(model) not in (VisionTransformer, VisionTransformerDistilled):
        # another subclass changes what sttool's forward would have to do; refuse it rather than run it wrong
        raise SttoolError(f"sttool patches timm's VisionTransformer and VisionTransformerDistilled classes (vit_*, deit_*, "
                          f"deit3_*, vit_*_dinov2*, vit_*_clip*, vit_*_siglip*), not {type(model).__name__}")
    pool = getattr(model, "attn_pool", None)
    if model.global_pool not in ("token", "avg", "map"):
        raise SttoolError(f"global_pool '{model.global_pool}' is not supported; valid: token, avg, map")
    if pool is not None and getattr(pool, "pos_embed", None) is not None:
        raise SttoolError("an attention-pool head with its own position embedding is not supported: pruned tokens "
                          "lose their positions")
    for index, block in enumerate(cast(VisionTransformer, model).blocks):
        if type(block) is not Block or not isinstance(block.attn, Attention):
            raise SttoolError(f"block {index + 1} is a {type(block).__name__}; sttool supports timm's standard ViT Block")
        if getattr(block.attn, "gate", None) is not None:
            raise SttoolError(f"block {index + 1} uses gated attention, which sttool does not support")


def _token_score(model: VisionTransformer, config: ModelConfig) -> Score:
    """The rule pruning blocks rank tokens by: the [CLS] attention where there is a class token, else what
    the head reads (the mean attention received for average pooling, the pool query's for an attention pool)."""
    has_pool = getattr(model, "attn_pool", None) is not None
    choice = config.token_score
    if choice == "auto":
        return "cls" if model.cls_token is not None else "pool" if has_pool else "mean"
    if choice == "cls" and model.cls_token is None:
        raise SttoolError("model.token_score: 'cls' needs a class token and this ViT has none; valid: auto, mean"
                          + (", pool" if has_pool else ""))
    if choice == "pool" and not has_pool:
        raise SttoolError("model.token_score: 'pool' needs an attention-pool head (global_pool 'map'); valid: auto, mean"
                          + (", cls" if model.cls_token is not None else ""))
    return choice


def _make_adapter(config: ModelConfig, dim: int, index: int, depth: int, ends: list[int]) -> nn.Module | None:
    kind = config.spec.adapter
    bottleneck, scale, dropout = config.bottleneck or 0, config.adapter_scale or 0.0, config.adapter_dropout or 0.0  # resolved
    if kind == "dense":
        return DenseAdapter(dim, index, bottleneck, scale)
    if kind == "stage":
        return StageAdapter(dim, bottleneck, in_stage_sum=index < depth - 1, closes_stage=index in ends)
    if kind == "parallel":
        return ParallelAdapter(dim, bottleneck, scale, dropout)
    return None


def init_head(model: VisionTransformer) -> None:
    """The official code's head initialisation (MAE linear probe): weights N(0, 0.01), bias 0."""
    for head in (model.head, getattr(model, "head_dist", None)):
        if isinstance(head, nn.Linear):
            nn.init.trunc_normal_(head.weight, std=0.01)
            nn.init.zeros_(head.bias)


def patch_model(model: VisionTransformer, config: ModelConfig | None = None, **options: Any) -> SparseViT:
    """Turn a timm ``VisionTransformer`` into a Sparse-Tuning model in place and return it.

    ``options`` are ``ModelConfig`` fields (method, keep_rate, keep_layers, bottleneck, ...). The
    backbone is frozen except what the method trains; timm's state_dict keys are unchanged.
    """
    _check_patchable(model)
    was_training = model.training
    try:
        config = replace(config or ModelConfig(), **options)
    except TypeError as err:
        raise SttoolError(f"patch_model: {err}") from None
    if config.num_classes is None:
        config = replace(config, num_classes=model.num_classes or DEFAULT_CLASSES)
    config = config.resolved()
    vit: Any = model  # timm's submodules are dynamic attributes; sttool sets its own on them below
    num_classes = config.num_classes or DEFAULT_CLASSES
    keep_rate = config.keep_rate if config.keep_rate is not None else 1.0
    depth = len(vit.blocks)
    config.check_depth(depth)
    score = _token_score(model, config)
    config = replace(config, token_score=score)
    distilled = isinstance(model, VisionTransformerDistilled)
    if distilled and config.num_frames is not None:
        raise SttoolError("model.num_frames: the distilled DeiT has no video form in sttool; use a deit_* or vit_* backbone")
    if config.exit_layers and config.exit_pool == "token" and model.cls_token is None:
        raise SttoolError("model.exit_pool: 'token' reads the [CLS] token and this ViT has none; valid: mean")
    prune_blocks = sorted(layer - 1 for layer in config.keep_layers)
    ends = stage_ends(depth, prune_blocks)
    dim = vit.embed_dim
    for index, block in enumerate(vit.blocks):
        block.__class__ = SparseBlock
        block.keep_rate = keep_rate if index in prune_blocks and keep_rate < 1.0 else None
        block.fuse_token = config.fuse_token
        block.num_prefix = vit.num_prefix_tokens
        block.score = score
        if score == "pool":
            block.__dict__["pool"] = vit.attn_pool  # read, not owned: a submodule here would duplicate its state_dict keys
        block.adapter = _make_adapter(config, dim, index, depth, ends)
        attn_dim = block.attn.qkv.out_features // 3
        block.lora = LoRAQV(dim, attn_dim, config.lora_rank, config.lora_alpha) if config.spec.adapter == "lora" else None
    vit.__class__ = SparseViTDistilled if distilled else SparseViT
    vit.sttool_config = config
    if vit.num_classes != num_classes:
        vit.reset_classifier(num_classes)
        init_head(vit)
    vit.head_norm = nn.BatchNorm1d(dim, affine=False, eps=1e-6) if config.head == "bn_linear" else nn.Identity()
    if distilled:
        vit.head_dist_norm = nn.BatchNorm1d(dim, affine=False, eps=1e-6) if config.head == "bn_linear" else nn.Identity()
    if config.num_frames is not None:
        make_video_model(vit, config.num_frames, config.tubelet, config.tubelet_init)
    if config.exit_layers:
        vit.exits = Exits(dim, [layer - 1 for layer in config.exit_layers], config.exit_bottleneck,
                          num_classes, config.head == "bn_linear", config.exit_pool)
    _set_trainable(vit, config.spec.trains)
    sparse: SparseViT = vit.train(was_training)  # new modules (head_norm, adapters) follow the model's mode
    return sparse


def _set_trainable(model: SparseViT, trains: str) -> None:
    for param in model.parameters():
        param.requires_grad = trains == "all"
    if trains == "all":
        return
    trained: list[nn.Module] = [model.head, getattr(model, "head_dist", nn.Identity()), getattr(model, "exits", nn.Identity())]
    if trains == "adapters":
        blocks: list[Any] = list(model.blocks)
        for block in blocks:
            trained += [m for m in (block.adapter, block.lora) if m is not None]
    for module in trained:
        for param in module.parameters():
            param.requires_grad = True
    time_embed = getattr(model, "time_embed", None)
    if time_embed is not None:  # new for video, so learned by every method that trains more than the head
        time_embed.requires_grad = trains == "adapters"
        for param in model.patch_embed.proj.parameters():  # the tubelet's time axis is new too
            param.requires_grad = trains == "adapters"


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
