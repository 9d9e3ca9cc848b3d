"""Token labelling (as in LV-ViT): every patch token also learns the class under it, or "background".

Used to pre-train a ViT from scratch on the synthetic sets, whose images come with foreground masks:
a patch whose pixels are at least half on the object gets the image's class, every other patch the
extra class K. The dense, local signal gets a small ViT past the long plateau that plain image-level
classification shows from scratch; the extra Linear head is dropped when the backbone is exported.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sttool.engine.mixup import soft_cross_entropy


def patch_labels(masks: Tensor, labels: Tensor, patch: int, num_classes: int) -> Tensor:
    """(B, H, W) bool masks and (B,) labels -> (B, h * w) labels per patch; K marks background."""
    cover = F.avg_pool2d(masks.float().unsqueeze(1), patch).flatten(1)  # (B, h * w) share on the object
    background = torch.full_like(cover, num_classes, dtype=torch.long)
    return torch.where(cover >= 0.5, labels.unsqueeze(1).expand_as(background), background)


def add_token_head(model: nn.Module, num_classes: int) -> None:
    """The patch classifier, part of the model so that it trains, checkpoints and resumes with it."""
    model.token_head = nn.Linear(model.embed_dim, num_classes + 1)


class TokenLabelForward(nn.Module):
    """Training view: the image logits and the patch tokens' logits (DDP wraps this module)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        tokens = self.model.forward_features(x)  # (B, N, C)
        patch_logits = self.model.token_head(tokens[:, self.model.num_prefix_tokens :])  # (B, h * w, K + 1)
        return self.model.forward_head(tokens), patch_logits


class TokenLabelLoss:
    """Image cross-entropy plus ``weight`` x the mean cross-entropy of the patch tokens."""

    def __init__(self, weight: float, patch: int, num_classes: int) -> None:
        self.weight, self.patch, self.num_classes = weight, patch, num_classes

    def __call__(self, outputs: tuple[Tensor, Tensor], targets: Tensor, labels: Tensor, masks: Tensor | None) -> Tensor:
        logits, patch_logits = outputs
        token_targets = patch_labels(masks, labels, self.patch, self.num_classes)  # (B, h * w)
        token_loss = F.cross_entropy(patch_logits.float().flatten(0, 1), token_targets.flatten())
        return soft_cross_entropy(logits, targets) + self.weight * token_loss
