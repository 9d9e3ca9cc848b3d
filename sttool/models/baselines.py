"""The adapters of the baselines: AdaptFormer's parallel adapter (Chen et al., NeurIPS 2022) beside
the MLP, and LoRA on the query and value projections of timm's fused ``qkv`` Linear (rank 8 by default)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sttool.models.vit import ForwardState


class ParallelAdapter(nn.Module):
    """``s * W_up Dropout(ReLU(W_down x))``, added beside the frozen MLP; zero at initialisation."""

    def __init__(self, dim: int, bottleneck: int = 64, scale: float = 0.1, dropout: float = 0.1) -> None:
        super().__init__()
        self.down = nn.Linear(dim, bottleneck)
        self.up = nn.Linear(bottleneck, dim)
        self.scale = scale
        self.dropout = dropout
        nn.init.kaiming_uniform_(self.down.weight, a=math.sqrt(5))
        nn.init.zeros_(self.down.bias)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: Tensor, state: ForwardState) -> Tensor:
        hidden = F.dropout(F.relu(self.down(x)), p=self.dropout, training=self.training)  # (B, N, r)
        return self.up(hidden) * self.scale  # (B, N, C)


class LoRAQV(nn.Module):
    """Adds ``(alpha / r) * B A x`` to the q and v slices of ``qkv(x)``; B starts at zero."""

    def __init__(self, dim: int, attn_dim: int, rank: int = 8, alpha: float | None = None) -> None:
        super().__init__()
        self.q_down = nn.Linear(dim, rank, bias=False)
        self.q_up = nn.Linear(rank, attn_dim, bias=False)
        self.v_down = nn.Linear(dim, rank, bias=False)
        self.v_up = nn.Linear(rank, attn_dim, bias=False)
        self.scale = (rank if alpha is None else alpha) / rank
        for down, up in ((self.q_down, self.q_up), (self.v_down, self.v_up)):
            nn.init.kaiming_uniform_(down.weight, a=math.sqrt(5))
            nn.init.zeros_(up.weight)

    def forward(self, x: Tensor, qkv: Tensor) -> Tensor:
        q, k, v = qkv.chunk(3, dim=-1)  # each (B, N, A)
        q = q + self.q_up(self.q_down(x)) * self.scale
        v = v + self.v_up(self.v_down(x)) * self.scale
        return torch.cat([q, k, v], dim=-1)  # (B, N, 3 * A)
