"""What training minimises: soft cross-entropy on targets with label smoothing, mixup and cutmix, and
token labelling for pre-training from scratch (the multi-exit loss is with the exits, ``engine.exits``).

Mixup and cutmix are seeded per step, so a resumed run replays them; mixing pairs each sample with the
batch flipped (timm's "batch" mode), within the local micro-batch, and cutmix cuts the same box from
every frame of a clip.

Token labelling (as in LV-ViT): every patch token also learns the class under it, or "background",
from the synthetic sets' foreground masks: a patch whose pixels are at least half on the object gets
the image's class, every other patch the extra class K. The dense, local signal speeds up a ViT
trained from scratch; the extra Linear head (``runs.load.add_token_head``) is not exported.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sttool.errors import SttoolError


class MixupCutmix:
    """Soft targets with label smoothing, optionally mixed by mixup (alpha) or cutmix (alpha)."""

    def __init__(self, num_classes: int, smoothing: float = 0.0, mixup: float = 0.0, cutmix: float = 0.0,
                 prob: float = 1.0, switch_prob: float = 0.5) -> None:
        self.num_classes = num_classes
        self.smoothing = smoothing
        self.mixup = mixup
        self.cutmix = cutmix
        self.prob = prob
        self.switch_prob = switch_prob

    def targets(self, labels: Tensor) -> Tensor:
        """Smoothed one-hot targets (B, K)."""
        off = self.smoothing / self.num_classes
        targets = torch.full((labels.shape[0], self.num_classes), off, device=labels.device)
        return targets.scatter_(1, labels.unsqueeze(1), 1.0 - self.smoothing + off)

    def __call__(self, inputs: Tensor, labels: Tensor, rng: np.random.Generator) -> tuple[Tensor, Tensor]:
        """Mixed inputs and soft targets for one micro-batch; ``rng`` is seeded by the step."""
        targets = self.targets(labels)
        if (self.mixup <= 0 and self.cutmix <= 0) or rng.random() >= self.prob or inputs.shape[0] < 2:
            return inputs, targets
        use_cutmix = self.cutmix > 0 and (self.mixup <= 0 or rng.random() < self.switch_prob)
        lam = float(rng.beta(self.cutmix, self.cutmix) if use_cutmix else rng.beta(self.mixup, self.mixup))
        flipped = inputs.flip(0)
        if use_cutmix:
            height, width = inputs.shape[-2:]
            cut = math.sqrt(1.0 - lam)
            cy, cx = int(rng.integers(height)), int(rng.integers(width))
            y0, y1 = max(cy - int(height * cut) // 2, 0), min(cy + int(height * cut) // 2, height)
            x0, x1 = max(cx - int(width * cut) // 2, 0), min(cx + int(width * cut) // 2, width)
            inputs = inputs.clone()
            inputs[..., y0:y1, x0:x1] = flipped[..., y0:y1, x0:x1]
            lam = 1.0 - (y1 - y0) * (x1 - x0) / (height * width)
        else:
            inputs = inputs * lam + flipped * (1.0 - lam)
        return inputs, targets * lam + targets.flip(0) * (1.0 - lam)


def soft_cross_entropy(logits: Tensor, targets: Tensor) -> Tensor:
    """Mean cross-entropy against soft targets (B, K), computed in float32."""
    return -(targets * logits.float().log_softmax(dim=-1)).sum(dim=-1).mean()


def patch_labels(masks: Tensor, labels: Tensor, patch: int, num_classes: int) -> Tensor:
    """(B, H, W) bool masks and (B,) labels -> (B, h * w) labels per patch; K marks background."""
    cover = F.avg_pool2d(masks.float().unsqueeze(1), patch).flatten(1)  # (B, h * w) share on the object
    background = torch.full_like(cover, num_classes, dtype=torch.long)
    return torch.where(cover >= 0.5, labels.unsqueeze(1).expand_as(background), background)


def cls_attention(attn: nn.Module, x: Tensor) -> Tensor:
    """The head-averaged attention (B, N) of token 0 over the tokens ``x`` (B, N, C) (normalised block input),
    from the q of token 0 and the keys only: what token selection ranks by, with gradients."""
    layer: Any = attn
    B, N, C = x.shape
    heads = layer.num_heads
    weight, bias = layer.qkv.weight, layer.qkv.bias
    q = F.linear(x[:, :1], weight[:C], None if bias is None else bias[:C])  # (B, 1, C)
    k = F.linear(x, weight[C : 2 * C], None if bias is None else bias[C : 2 * C])  # (B, N, C)
    q = layer.q_norm(q.reshape(B, 1, heads, -1).transpose(1, 2))  # (B, H, 1, d)
    k = layer.k_norm(k.reshape(B, N, heads, -1).transpose(1, 2))  # (B, H, N, d)
    return ((q * layer.scale) @ k.transpose(-2, -1)).float().softmax(dim=-1).mean(dim=1).squeeze(1)  # (B, N)


class TokenLabelForward(nn.Module):
    """Training view: the image logits, the patch tokens' logits and, for ``attention_blocks`` (0-based),
    the [CLS] attention rows (DDP wraps this module)."""

    def __init__(self, model: nn.Module, attention_blocks: list[int] | None = None) -> None:
        super().__init__()
        self.model = model
        self.attention_blocks = attention_blocks or []

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, list[Tensor]]:
        model: Any = self.model  # a SparseViT with a ``token_head``
        rows: list[Tensor] = []
        hooks = [model.blocks[i].norm1.register_forward_hook(
            lambda module, inputs, out, attn=model.blocks[i].attn: rows.append(cls_attention(attn, out)))
            for i in self.attention_blocks]
        try:
            tokens = model.forward_features(x)  # (B, N, C)
        finally:
            for hook in hooks:
                hook.remove()
        patch_logits = model.token_head(tokens[:, model.num_prefix_tokens :])  # (B, h * w, K + 1)
        return model.forward_head(tokens), patch_logits, rows


def attention_target(masks: Tensor, patch: int) -> Tensor:
    """(B, H, W) bool masks -> (B, h * w): each patch's share of the object's pixels (sums to 1)."""
    cover = F.avg_pool2d(masks.float().unsqueeze(1), patch).flatten(1)  # (B, h * w)
    return cover / cover.sum(dim=1, keepdim=True).clamp_min(1e-6)


class TokenLabelLoss:
    """Image cross-entropy plus ``weight`` x the mean cross-entropy of the patch tokens, plus
    ``attention_weight`` x the cross-entropy of each collected [CLS] row (renormalised over the patches)
    against the object's pixel share per patch: a backbone whose [CLS] attention finds the object is
    what token selection assumes (the Sparse-Tuning and EViT papers rely on large-scale pre-training
    for it; a micro backbone trained in minutes is given the target directly)."""

    def __init__(self, weight: float, patch: int, num_classes: int, attention_weight: float = 0.0) -> None:
        self.weight, self.patch, self.num_classes = weight, patch, num_classes
        self.attention_weight = attention_weight

    def __call__(self, outputs: tuple[Tensor, Tensor, list[Tensor]], targets: Tensor, labels: Tensor,
                 masks: Tensor | None) -> Tensor:
        logits, patch_logits, rows = outputs
        if masks is None:
            raise SttoolError("token labels need the foreground masks; set data.masks: true (synthetic_images)")
        token_targets = patch_labels(masks, labels, self.patch, self.num_classes)  # (B, h * w)
        token_loss = F.cross_entropy(patch_logits.float().flatten(0, 1), token_targets.flatten())
        loss = soft_cross_entropy(logits, targets) + self.weight * token_loss
        if rows and self.attention_weight > 0:
            target = attention_target(masks, self.patch)  # (B, h * w)
            prefix = rows[0].shape[1] - target.shape[1]
            losses = [-(target * (row[:, prefix:] / row[:, prefix:].sum(1, keepdim=True)).clamp_min(1e-8).log()).sum(1).mean()
                      for row in rows]
            loss = loss + self.attention_weight * torch.stack(losses).mean()
        return loss
