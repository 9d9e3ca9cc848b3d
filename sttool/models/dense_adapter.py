"""The Dense Adapter of Sparse-Tuning, as the paper's figure draws it (METHOD.md §2.3.a).

Parallel to the MLP of block N (1-based), it reads the block's own (sparsified) post-attention tokens
``x_N`` and the outputs of the adapters one and three blocks back::

    x_DA_N = W_up ReLU(W_down1 x_N + W_down2 S(x_DA_{N-1}) + W_down3 S(x_DA_{N-3}))

where the N-1 term exists from block 2 and the N-3 term from block 4 (44 projections of D x r on a
12-block ViT: 1.09 M parameters at D=768, r=32). ``S`` applies to the earlier outputs the token
selection the current block applied to its tokens; ``ForwardState.on_select`` does that to the cache,
so an adapter always reads outputs at its own token set. ``W_up`` starts at zero, so the model starts
equal to the frozen, sparsified backbone.
"""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor, nn

from sttool.models.state import ForwardState

# Offsets (in blocks) of the earlier adapters that feed a Dense Adapter: x_DA_{N-1} and x_DA_{N-3}.
DENSE_OFFSETS = (1, 3)


class DenseAdapter(nn.Module):
    """Adapter of block ``index`` (0-based) with dense connections to earlier adapters."""

    def __init__(self, dim: int, index: int, bottleneck: int = 32, scale: float = 1.0) -> None:
        super().__init__()
        self.down1 = nn.Linear(dim, bottleneck)
        self.down2 = nn.Linear(dim, bottleneck, bias=False) if index >= DENSE_OFFSETS[0] else None
        self.down3 = nn.Linear(dim, bottleneck, bias=False) if index >= DENSE_OFFSETS[1] else None
        self.up = nn.Linear(bottleneck, dim)
        self.scale = scale
        for down in (self.down1, self.down2, self.down3):
            if down is not None:
                nn.init.kaiming_uniform_(down.weight, a=math.sqrt(5))
        nn.init.zeros_(self.down1.bias)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: Tensor, state: ForwardState) -> Tensor:
        """Adapter output for tokens ``x`` (B, N, C); records it in ``state`` for later blocks."""
        history = state.history  # earlier x_DA, most recent last, all at this block's token set
        hidden = self.down1(x)  # (B, N, r)
        if self.down2 is not None:
            hidden = hidden + self.down2(history[-DENSE_OFFSETS[0]])
        if self.down3 is not None:
            hidden = hidden + self.down3(history[-DENSE_OFFSETS[1]])
        out = self.up(F.relu(hidden))  # (B, N, C): x_DA_N
        state.history = [*history[-(DENSE_OFFSETS[1] - 1) :], out]
        return out if self.scale == 1.0 else out * self.scale
