"""LoRA on the query and value projections of timm's fused ``qkv`` Linear (rank 8 by default)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


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
