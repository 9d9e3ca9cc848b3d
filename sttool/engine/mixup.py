"""Label smoothing, mixup and cutmix as soft targets, seeded per step so a resumed run replays them.

Mixing pairs each sample with the batch flipped (timm's "batch" mode), within the local micro-batch.
Cutmix cuts the same box from every frame of a clip.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor


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
