"""Multiple exits (MET, arXiv 2409.13999): linear exit heads fed by exit adapters that share projections.

What follows the paper (its abstract, the only part available): exits are linear heads inside the
frozen ViT; exit adapters (E-adapters) give each exit its own representation, and all E-adapters
share one down- and one up-projection. What is ours: each exit's own part is a LayerNorm and a gate on
the bottleneck (2 D + r parameters), the exit reads the [CLS] token (or the token mean) after its
block, and the head is the model's head type (BatchNorm without affine parameters, then Linear).

    f_k = n_k + W_up (g_k * ReLU(W_down n_k)),   n_k = LN_k(pool(h_{e_k}))
    z_k = Linear_k(BN_k(f_k))

The last exit is the model's own head after the final norm, so a model with exits still gives the
usual logits. W_up starts at zero, so every exit starts as a linear probe of its block's features.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class SharedExitAdapter(nn.Module):
    """The down- and up-projections that all exit adapters share."""

    def __init__(self, dim: int, bottleneck: int) -> None:
        super().__init__()
        self.down = nn.Linear(dim, bottleneck)
        self.up = nn.Linear(bottleneck, dim)
        nn.init.kaiming_uniform_(self.down.weight, a=math.sqrt(5))
        nn.init.zeros_(self.down.bias)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)


class ExitHead(nn.Module):
    """One exit: its own LayerNorm and bottleneck gate around the shared adapter, then a linear head."""

    def __init__(self, dim: int, bottleneck: int, num_classes: int, batch_norm: bool) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.gate = nn.Parameter(torch.ones(bottleneck))
        self.head_norm = nn.BatchNorm1d(dim, affine=False, eps=1e-6) if batch_norm else nn.Identity()
        self.head = nn.Linear(dim, num_classes)
        nn.init.trunc_normal_(self.head.weight, std=0.01)
        nn.init.zeros_(self.head.bias)

    def features(self, pooled: Tensor, shared: SharedExitAdapter) -> Tensor:
        """The exit's representation f_k of the pooled tokens (B, C)."""
        normed = self.norm(pooled)
        return normed + shared.up(self.gate * F.relu(shared.down(normed)))

    def logits(self, features: Tensor) -> Tensor:
        return self.head(self.head_norm(features))


class Exits(nn.Module):
    """The exits of a model: after 0-based ``blocks`` (the final head is the last exit, not listed)."""

    def __init__(self, dim: int, blocks: list[int], bottleneck: int, num_classes: int, batch_norm: bool,
                 pool: str = "token") -> None:
        super().__init__()
        self.blocks = list(blocks)
        self.pool = pool
        self.shared = SharedExitAdapter(dim, bottleneck)
        self.heads = nn.ModuleList(ExitHead(dim, bottleneck, num_classes, batch_norm) for _ in blocks)

    def pooled(self, tokens: Tensor, num_prefix: int) -> Tensor:
        """(B, N, C) -> (B, C): the [CLS] token, or the mean of the other tokens."""
        return tokens[:, 0] if self.pool == "token" else tokens[:, num_prefix:].mean(dim=1)

    def forward(self, index: int, tokens: Tensor, num_prefix: int) -> tuple[Tensor, Tensor]:
        """Features and logits of exit ``index`` for the tokens after its block."""
        head = self.heads[index]
        features = head.features(self.pooled(tokens, num_prefix), self.shared)
        return features, head.logits(features)
