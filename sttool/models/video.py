"""A timm image ViT applied to space-time tokens, so sparsification and adapters work unchanged on video.

A clip (B, 3, T, H, W) becomes T/t x h x w tokens through a tubelet embedding inflated from the image
patch embedding: ``mean`` (I3D inflation, the 2-D kernel repeated over t frames and divided by t) or
``center`` (the 2-D kernel on the tubelet's centre frame, zero on the others, so a token is a sharp
image token of one moment rather than a blur of t). Either way a static clip gives the image's
tokens. A convolutional stem before the projection (the micro backbone's) runs on every frame. The
tubelet's weights and the temporal embedding are new for video, so every method that trains more
than the head trains them. Each token gets the image's spatial position embedding plus a
learned temporal one (zero at first); the [CLS] token is kept, so [CLS]-attention token selection
scores all space-time tokens at once.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from sttool.errors import SttoolError


class TubeletEmbed(nn.Module):
    """Conv3d patch embedding over ``tubelet`` frames x ``patch`` pixels, from a timm PatchEmbed."""

    def __init__(self, image_embed: Any, num_frames: int, tubelet: int, init: str = "mean") -> None:
        super().__init__()
        conv: nn.Conv2d = image_embed.proj
        self.stem = getattr(image_embed, "stem", None)  # a convolutional stem runs on every frame
        (kh, kw), (sh, sw), padding = conv.kernel_size, conv.stride, conv.padding
        ph, pw = padding if isinstance(padding, tuple) else (0, 0)
        self.proj = nn.Conv3d(
            conv.in_channels, conv.out_channels, kernel_size=(tubelet, kh, kw), stride=(tubelet, sh, sw),
            padding=(0, ph, pw), bias=conv.bias is not None,
        ).to(device=conv.weight.device, dtype=conv.weight.dtype)
        with torch.no_grad():
            if init == "mean":
                self.proj.weight.copy_(conv.weight.unsqueeze(2).repeat(1, 1, tubelet, 1, 1) / tubelet)
            elif init == "center":
                self.proj.weight.zero_()
                self.proj.weight[:, :, tubelet // 2].copy_(conv.weight)
            else:
                raise SttoolError(f"model.tubelet_init: '{init}' is not one of mean, center")
            if conv.bias is not None and self.proj.bias is not None:
                self.proj.bias.copy_(conv.bias)
        self.norm = image_embed.norm
        self.img_size = image_embed.img_size
        self.patch_size = image_embed.patch_size
        self.grid_size = image_embed.grid_size
        self.time_size = num_frames // tubelet
        self.num_patches = self.time_size * image_embed.num_patches  # space-time tokens

    def forward(self, x: Tensor) -> Tensor:
        """(B, 3, T, H, W) -> (B, T / t, h * w, C)."""
        if x.ndim != 5:
            raise SttoolError(f"a video model takes clips shaped (B, 3, T, H, W); got a tensor of shape {tuple(x.shape)}")
        if self.stem is not None:
            B, _, T = x.shape[:3]
            frames = self.stem(x.transpose(1, 2).flatten(0, 1))  # (B * T, C', H', W')
            x = frames.view(B, T, *frames.shape[1:]).transpose(1, 2)  # (B, C', T, H', W')
        x = self.proj(x)  # (B, C, T', h, w)
        return self.norm(x.flatten(3).permute(0, 2, 3, 1))  # (B, T', h * w, C)


def make_video_model(model: Any, num_frames: int, tubelet: int, init: str = "mean") -> None:
    """Give ``model`` a tubelet embedding and a temporal position embedding (``time_embed``)."""
    if num_frames % tubelet:
        raise SttoolError(f"model.num_frames: {num_frames} is not a multiple of model.tubelet {tubelet}")
    if model.pos_embed is None or getattr(model, "dynamic_img_size", False):
        raise SttoolError("video needs a backbone with a fixed, learned position embedding")
    model.patch_embed = TubeletEmbed(model.patch_embed, num_frames, tubelet, init)
    model.time_embed = nn.Parameter(torch.zeros(1, num_frames // tubelet, model.embed_dim, device=model.pos_embed.device))


def embed_video(model: Any, x: Tensor) -> Tensor:
    """Space-time tokens with [CLS] first: (B, 3, T, H, W) -> (B, P + T' * h * w, C)."""
    patches = model.patch_embed(x)  # (B, T', hw, C)
    B, time_size, _, dim = patches.shape
    prefix = model.num_prefix_tokens
    pos = model.pos_embed  # (1, [P +] hw, C)
    spatial = pos if model.no_embed_class else pos[:, prefix:]  # (1, hw, C)
    patches = patches + spatial.unsqueeze(1) + model.time_embed.unsqueeze(2)  # (B, T', hw, C)
    parts = [model.cls_token.expand(B, -1, -1)]
    if model.reg_token is not None:
        parts.append(model.reg_token.expand(B, -1, -1))
    prefix_tokens = torch.cat(parts, dim=1)  # (B, P, C)
    if not model.no_embed_class:
        prefix_tokens = prefix_tokens + pos[:, :prefix]
    tokens = torch.cat([prefix_tokens, patches.reshape(B, time_size * patches.shape[2], dim)], dim=1)
    return model.norm_pre(model.patch_drop(model.pos_drop(tokens)))
