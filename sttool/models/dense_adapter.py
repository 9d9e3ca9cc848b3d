"""The Dense Adapter of Sparse-Tuning (arXiv 2405.14700), as the paper's figure draws it, and the
variant the official code released (``sparse_tuning_released``).

Parallel to the MLP of block N (1-based), it reads the block's own (sparsified) post-attention tokens
``x_N`` and the outputs of the adapters one and three blocks back::

    x_DA_N = W_up ReLU(W_down1 x_N + W_down2 S(x_DA_{N-1}) + W_down3 S(x_DA_{N-3}))

where the N-1 term exists from block 2 and the N-3 term from block 4 (44 projections of D x r on a
12-block ViT: 1.09 M parameters at D=768, r=32). ``S`` applies to the earlier outputs the token
selection the current block applied to its tokens; ``ForwardState.on_select`` does that to the cache,
so an adapter always reads outputs at its own token set. ``W_up`` starts at zero, so the model starts
equal to the frozen, sparsified backbone.

The released variant (``StageAdapter``, the official repository's adapter): each block has a multi-branch bottleneck (D -> 2r -> r -> 2r, concatenated, back to 2r, then D; the
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

from sttool.models.vit import ForwardState

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
