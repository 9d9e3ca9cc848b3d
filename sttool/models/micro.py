"""The micro backbone: a 12-block ViT with a convolutional stem, small enough to pre-train on a CPU.

``vit_micro_convstem_patch8_64`` is a timm ``VisionTransformer`` whose patch embedding is a small
convolutional stem (as in Xiao et al. 2021, "Early convolutions help transformers see better"): four
3x3 convolutions with ReLU (strides 2, 1, 2, 1) and a stride-2 3x3 projection to the token width,
so each token still covers 8 x 8 pixels (64 patches and [CLS] at 64 px) and blocks 4, 7 and 10 prune
as on ViT-B. It is registered in timm's model registry, and its weights, pre-trained by sttool
(``sttool prepare micro-backbone``) on the synthetic ``pretrain`` task, ship inside the package:
``weights: hub`` loads them through timm's pretrained path from that file, with no network.

``vit_micro_patch8_64`` is the same ViT with timm's plain linear patch embedding and no weights, a
small plain ViT for tests.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from timm.layers import PatchEmbed
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from timm.models.vision_transformer import VisionTransformer, checkpoint_filter_fn
from torch import Tensor, nn

from sttool.errors import SttoolError

MICRO_NAME = "vit_micro_convstem_patch8_64"
MICRO_TAG = "synthetic_pretrain"
MICRO_WEIGHTS = Path(__file__).resolve().parent.parent / "assets" / f"{MICRO_NAME}.{MICRO_TAG}.safetensors"
PLAIN_NAME = "vit_micro_patch8_64"
MICRO_ARGS: dict[str, Any] = dict(img_size=64, patch_size=8, embed_dim=128, depth=12, num_heads=4, mlp_ratio=4.0)
STEM_WIDTH = 16  # channels after the first two convolutions (doubled after the next two)


class ConvStemEmbed(PatchEmbed):
    """timm's ``PatchEmbed`` with a convolutional stem before ``proj``: (B, 3, H, W) -> (B, H/8 * W/8, C).

    ``stem`` (stride 4) runs per image; ``proj`` (3x3, stride 2) is the layer that makes tokens, so a
    video model inflates ``proj`` into a tubelet and runs ``stem`` on every frame.
    """

    def __init__(self, *args: Any, stem_width: int = STEM_WIDTH, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.patch_size != (8, 8):
            raise SttoolError(f"the convolutional stem makes 8 x 8-pixel tokens, not {self.patch_size}")
        wide = 2 * stem_width
        self.stem = nn.Sequential(
            nn.Conv2d(self.proj.in_channels, stem_width, 3, 2, 1), nn.ReLU(),
            nn.Conv2d(stem_width, stem_width, 3, 1, 1), nn.ReLU(),
            nn.Conv2d(stem_width, wide, 3, 2, 1), nn.ReLU(),
            nn.Conv2d(wide, wide, 3, 1, 1), nn.ReLU(),
        )
        self.proj = nn.Conv2d(wide, self.proj.out_channels, 3, 2, 1, bias=self.proj.bias is not None)

    def forward(self, x: Tensor) -> Tensor:
        if self.strict_img_size and tuple(x.shape[-2:]) != self.img_size:
            raise SttoolError(f"input of {tuple(x.shape[-2:])} pixels, but this model takes {self.img_size}")
        x = self.proj(self.stem(x))  # (B, C, H/8, W/8)
        return self.norm(x.flatten(2).transpose(1, 2))  # (B, N, C)


def _cfg(weights: Path | None) -> dict[str, Any]:
    return {
        "file": str(weights) if weights is not None else None,
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
    }


default_cfgs = generate_default_cfgs({f"{MICRO_NAME}.{MICRO_TAG}": _cfg(MICRO_WEIGHTS), PLAIN_NAME: _cfg(None)})


@register_model
def vit_micro_convstem_patch8_64(pretrained: bool = False, **kwargs: Any) -> VisionTransformer:
    """ViT-Micro/8 at 64 px with a convolutional stem: width 128, 4 heads, 12 blocks, 65 tokens."""
    return build_model_with_cfg(VisionTransformer, MICRO_NAME, pretrained, pretrained_filter_fn=checkpoint_filter_fn,
                                **{**MICRO_ARGS, "embed_layer": ConvStemEmbed, **kwargs})


@register_model
def vit_micro_patch8_64(pretrained: bool = False, **kwargs: Any) -> VisionTransformer:
    """ViT-Micro/8 at 64 px with timm's linear patch embedding (no weights): a small plain ViT."""
    return build_model_with_cfg(VisionTransformer, PLAIN_NAME, pretrained, pretrained_filter_fn=checkpoint_filter_fn,
                                **{**MICRO_ARGS, **kwargs})


def backbone_keys() -> set[str]:
    """The state_dict keys of the micro backbone without a head: what a weights file holds."""
    with torch.device("meta"):
        return set(VisionTransformer(**MICRO_ARGS, embed_layer=ConvStemEmbed, num_classes=0).state_dict())


def export_backbone(model: nn.Module, path: Path) -> int:
    """Write the backbone's weights as float16 safetensors, with timm's keys only (no head, nothing sttool
    added for training), atomically; returns the file's size in bytes."""
    keys = backbone_keys()
    state = {k: v.detach().to("cpu", torch.float16).contiguous() for k, v in model.state_dict().items() if k in keys}
    missing = keys - set(state)
    if missing:
        raise SttoolError(f"the model has no {sorted(missing)[:3]}; it is not a {MICRO_NAME}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    save_file(state, str(tmp), metadata={"architecture": MICRO_NAME, "tag": MICRO_TAG})
    tmp.replace(path)
    return path.stat().st_size


class StemClassifier(nn.Module):
    """The stem trained alone first, as a small CNN: the stem's convolutions and ``proj`` each followed by
    BatchNorm, then ReLU, global average pooling and a Linear classifier.

    A CNN learns the shapes from far fewer images than a ViT (on 2 CPU threads, minutes rather than
    hours), so the ViT starts from a stem that already sees; ``fold_into`` copies it into the ViT's
    ``patch_embed`` with each BatchNorm folded into its convolution, so the ViT has no BatchNorm.
    """

    def __init__(self, num_classes: int, embed_dim: int = MICRO_ARGS["embed_dim"], stem_width: int = STEM_WIDTH) -> None:
        super().__init__()
        reference = ConvStemEmbed(img_size=MICRO_ARGS["img_size"], patch_size=MICRO_ARGS["patch_size"], embed_dim=embed_dim,
                                  stem_width=stem_width)
        convs: list[nn.Conv2d] = [m for m in reference.stem if isinstance(m, nn.Conv2d)] + [reference.proj]
        self.convs = nn.ModuleList(convs)
        self.norms = nn.ModuleList([nn.BatchNorm2d(conv.out_channels) for conv in convs])
        self.head = nn.Linear(embed_dim, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        for conv, norm in zip(self.convs, self.norms, strict=True):
            x = torch.relu(norm(conv(x)))  # (B, C, h, w)
        return self.head(x.mean(dim=(2, 3)))

    @torch.no_grad()
    def fold_into(self, model: VisionTransformer) -> None:
        """Write the stem into ``model.patch_embed`` (a ``ConvStemEmbed``), BatchNorm folded (eval statistics)."""
        embed = model.patch_embed
        if not isinstance(embed, ConvStemEmbed):
            raise SttoolError(f"{type(embed).__name__} has no convolutional stem to receive")
        targets = [m for m in embed.stem if isinstance(m, nn.Conv2d)] + [embed.proj]
        convs: list[Any] = list(self.convs)  # Conv2d and BatchNorm2d, iterated as modules
        norms: list[Any] = list(self.norms)
        for conv, norm, target in zip(convs, norms, targets, strict=True):
            scale = norm.weight / (norm.running_var + norm.eps).sqrt()  # (C,)
            target.weight.copy_(conv.weight * scale[:, None, None, None])
            assert target.bias is not None
            target.bias.copy_(norm.bias + (conv.bias - norm.running_mean) * scale)
