"""Which original patches survive each pruning stage, from the selections the model itself made.

A block's ``TokenSelection`` indexes the block's *candidate* tokens: every token after the prefix, in
the current order, with an earlier stage's fused token as the last candidate. Stage by stage, each
candidate is traced to the patch it started as (``origin``); the fused token traces to no patch
(-1), so a patch absorbed into a fused token counts as dropped from then on, even if that fused
token is kept later. Space-time tokens of a video model are numbered ``t * h * w + p`` (time slot
t, patch p), as the tubelet embedding lays them out.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from sttool.models.state import ForwardState
from sttool.models.vit import SparseViT

FUSED = -1  # the origin of a fused token: no single patch


@dataclass
class KeptStage:
    """The tokens after one pruning block."""

    block: int  # 1-based block that made the selection
    kept: Tensor  # (B, P) bool: original patches still present as themselves
    tokens: int  # tokens after the block: prefix, kept candidates and the fused token
    fused_weight: Tensor | None  # (B,) share of the [CLS] attention row fused into one token; None without fusion


def trace_selections(selections: list, num_patches: int, batch: int) -> list[KeptStage]:
    """Follow ``selections`` (one entry per block, None where nothing was dropped) from the patch grid."""
    origin = torch.arange(num_patches).expand(batch, num_patches)  # (B, M) patch each candidate started as
    stages = []
    for block, selection in enumerate(selections, start=1):
        if selection is None:
            continue
        origin = origin.gather(1, selection.index.cpu())  # (B, K) kept candidates, in selection order
        weight = None
        if selection.fuse_weights is not None:
            origin = torch.cat([origin, origin.new_full((batch, 1), FUSED)], dim=1)  # (B, K + 1)
            weight = selection.fuse_weights.float().sum(dim=1).cpu()  # (B,)
        kept = torch.zeros(batch, num_patches + 1, dtype=torch.bool)
        kept.scatter_(1, origin + 1, True)  # column 0 collects the fused token
        stages.append(KeptStage(block, kept[:, 1:], selection.num_prefix + origin.shape[1], weight))
    return stages


@torch.no_grad()
def track_kept_tokens(model: SparseViT, inputs: Tensor) -> list[KeptStage]:
    """Run ``model`` (put in eval mode) on ``inputs`` (B, 3, H, W) or (B, 3, T, H, W) and trace its selections."""
    model.eval()
    state = ForwardState()
    model.forward_features(inputs, state)
    return trace_selections(state.selections, model.patch_embed.num_patches, inputs.shape[0])
