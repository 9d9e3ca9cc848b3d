"""The micro backbone: a 12-block ViT small enough to pre-train and fine-tune on a CPU in minutes.

It is registered in timm's model registry like any timm ViT (``vit_micro_patch8_64``), and its
weights, pre-trained by sttool's own recipes (``recipes/micro_backbone.yaml``, then
``recipes/micro_backbone_stage2.yaml``) on the synthetic ``pretrain`` task, ship inside the package:
``weights: hub`` loads them through timm's pretrained path from that file, with no network. The
default blocks 4, 7 and 10 prune as on ViT-B.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from timm.models.vision_transformer import VisionTransformer, checkpoint_filter_fn

MICRO_NAME = "vit_micro_patch8_64"
MICRO_TAG = "synthetic_pretrain"
MICRO_WEIGHTS = Path(__file__).resolve().parent.parent / "assets" / f"{MICRO_NAME}.{MICRO_TAG}.safetensors"
MICRO_ARGS = dict(img_size=64, patch_size=8, embed_dim=128, depth=12, num_heads=4, mlp_ratio=4.0)

default_cfgs = generate_default_cfgs({
    f"{MICRO_NAME}.{MICRO_TAG}": {
        "file": str(MICRO_WEIGHTS),
        "custom_load": False,
        "num_classes": 0,
        "input_size": (3, 64, 64),
        "pool_size": None,
        "crop_pct": 1.0,
        "interpolation": "bicubic",
        "fixed_input_size": True,
        "mean": (0.5, 0.5, 0.5),
        "std": (0.5, 0.5, 0.5),
        "first_conv": "patch_embed.proj",
        "classifier": "head",
        "license": "apache-2.0",
    },
})


@register_model
def vit_micro_patch8_64(pretrained: bool = False, **kwargs) -> VisionTransformer:
    """ViT-Micro/8 at 64 px: width 128, 4 heads, 12 blocks, 2.4 M parameters, 65 tokens."""
    return build_model_with_cfg(
        VisionTransformer, MICRO_NAME, pretrained, pretrained_filter_fn=checkpoint_filter_fn, **{**MICRO_ARGS, **kwargs}
    )


def export_backbone(model: VisionTransformer, path: Path) -> int:
    """Write the backbone's weights as float16 safetensors, with timm's keys only (no head, nothing sttool
    added for training); returns the file's size in bytes."""
    with torch.device("meta"):
        keys = set(VisionTransformer(**MICRO_ARGS, num_classes=0).state_dict())
    state = {k: v.detach().half().contiguous() for k, v in model.state_dict().items() if k in keys}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path), metadata={"architecture": MICRO_NAME, "tag": MICRO_TAG})
    return path.stat().st_size
