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


class TokenLabelForward(nn.Module):
    """Training view: the image logits and the patch tokens' logits (DDP wraps this module)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        model: Any = self.model  # a SparseViT with a ``token_head``
        tokens = model.forward_features(x)  # (B, N, C)
        patch_logits = model.token_head(tokens[:, model.num_prefix_tokens :])  # (B, h * w, K + 1)
        return model.forward_head(tokens), patch_logits


class TokenLabelLoss:
    """Image cross-entropy plus ``weight`` x the mean cross-entropy of the patch tokens."""

    def __init__(self, weight: float, patch: int, num_classes: int) -> None:
        self.weight, self.patch, self.num_classes = weight, patch, num_classes

    def __call__(self, outputs: tuple[Tensor, Tensor], targets: Tensor, labels: Tensor, masks: Tensor | None) -> Tensor:
        logits, patch_logits = outputs
        if masks is None:
            raise SttoolError("token labels need the foreground masks; set data.masks: true (synthetic_images)")
        token_targets = patch_labels(masks, labels, self.patch, self.num_classes)  # (B, h * w)
        token_loss = F.cross_entropy(patch_logits.float().flatten(0, 1), token_targets.flatten())
        return soft_cross_entropy(logits, targets) + self.weight * token_loss
