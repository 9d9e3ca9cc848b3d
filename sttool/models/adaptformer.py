"""AdaptFormer's parallel adapter (Chen et al., NeurIPS 2022), a baseline beside the MLP."""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor, nn

from sttool.models.state import ForwardState


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
