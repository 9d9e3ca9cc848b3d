"""The released code's variant of Sparse-Tuning's adapter (METHOD.md §2.3.b), selectable by name.

Each block has a multi-branch bottleneck (D -> 2r -> r -> 2r, concatenated, back to 2r, then D; the
official code hard-codes D=768, r=32: 109,536 parameters per block). Its "dense connections" are
stage sums: the adapter outputs of a stage (the blocks between two pruning blocks) are added once
more to the residual stream at the stage's last block. As released, the patch embedding is added
again at the end of the first stage and the last block's adapter is left out of the last sum.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sttool.models.state import ForwardState


class StageAdapter(nn.Module):
    """Multi-branch adapter of one block, and its part in the stage sum."""

    def __init__(self, dim: int, bottleneck: int = 32, in_stage_sum: bool = True, closes_stage: bool = False) -> None:
        super().__init__()
        wide = 2 * bottleneck
        self.down1 = nn.Linear(dim, wide)
        self.down2 = nn.Linear(wide, bottleneck)
        self.up1 = nn.Linear(bottleneck, wide)
        self.down3 = nn.Linear(bottleneck + wide, wide)
        self.up2 = nn.Linear(wide, dim)
        self.in_stage_sum = in_stage_sum
        self.closes_stage = closes_stage
        for layer in (self.down1, self.down2, self.down3):
            nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5))
        for layer in (self.up1, self.up2):
            nn.init.zeros_(layer.weight)
        for layer in (self.down1, self.down2, self.up1, self.down3, self.up2):
            nn.init.zeros_(layer.bias)

    def forward(self, x: Tensor, state: ForwardState) -> Tensor:
        """This block's adapter output, plus the stage sum when the block closes a stage."""
        x0 = F.relu(self.down1(x))  # (B, N, 2r)
        s1 = self.down2(x0)  # (B, N, r)
        s2 = self.up1(s1)  # (B, N, 2r)
        hidden = self.down3(torch.cat([s1, s2], dim=-1)) + x0  # (B, N, 2r)
        out = self.up2(hidden)  # (B, N, C)
        if self.in_stage_sum:
            state.history = [state.history[0] + out] if state.history else [out]
        if self.closes_stage and state.history:
            stage_sum = state.history[0]
            state.history = []
            return out + stage_sum
        return out


def stage_ends(depth: int, prune_blocks: list[int]) -> list[int]:
    """0-based blocks that close a stage: the one before each pruning block, and the last block."""
    return sorted({b - 1 for b in prune_blocks if b >= 1} | {depth - 1})
