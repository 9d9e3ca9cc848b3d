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

The exit policy (``predict_early_exit``): a sample leaves at the first exit whose confidence (max
softmax) reaches that exit's threshold. Samples that exit leave the batch: the tokens and the adapter
history are compacted to the samples still running, so the later blocks really process a smaller
batch and saved FLOPs become saved time. Every exit reached is evaluated on the way, and counted in
the expected cost (``FlopCount.exit_costs``).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

if TYPE_CHECKING:
    from sttool.models.vit import ForwardState, SparseViT


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
        head = cast(ExitHead, self.heads[index])
        features = head.features(self.pooled(tokens, num_prefix), self.shared)
        return features, head.logits(features)


def confidence(logits: Tensor) -> Tensor:
    """Max softmax probability per sample (B,)."""
    return logits.float().softmax(dim=-1).amax(dim=-1)


def exit_assignment(confidences: Tensor, thresholds: list[float]) -> Tensor:
    """Exit of each sample from per-exit confidences (K, N) and K-1 thresholds; the last exit takes the rest."""
    exits = torch.full((confidences.shape[1],), confidences.shape[0] - 1, dtype=torch.long)
    for k in reversed(range(len(thresholds))):
        exits[confidences[k] >= thresholds[k]] = k
    return exits


@torch.no_grad()
def predict_early_exit(model: SparseViT, x: Tensor, thresholds: list[float]) -> tuple[Tensor, Tensor]:
    """Logits (B, K) and exit index (B,) of each sample under the thresholds of the K-1 early exits."""
    exits = model.exits
    if len(thresholds) != len(exits.blocks):
        raise ValueError(f"{len(exits.blocks)} early exits need as many thresholds, got {len(thresholds)}")
    batch = x.shape[0]
    logits_out = torch.zeros(batch, model.num_classes, device=x.device)
    exit_of = torch.full((batch,), len(exits.blocks), dtype=torch.long, device=x.device)
    running = torch.arange(batch, device=x.device)  # original indices of the samples still in the batch

    def leave(index: int, tokens: Tensor, state: ForwardState) -> Tensor | None:
        nonlocal running
        state.selections.clear()  # nothing looks back at them here; do not keep the large batch alive
        if index not in exits.blocks:
            return tokens
        k = exits.blocks.index(index)
        _, logits = exits(k, tokens, model.num_prefix_tokens)
        done = confidence(logits) >= thresholds[k]
        logits_out[running[done]] = logits[done].float()
        exit_of[running[done]] = k
        stay = (~done).nonzero().squeeze(1)
        if stay.numel() == 0:
            return None
        if stay.numel() < running.numel():
            running, tokens = running[stay], tokens[stay]  # (B', N, C): exited samples leave the batch
            state.index_select(stay)
        return tokens

    tokens = model.embed(x)
    remaining = model.run_blocks(tokens, model.initial_state(tokens), leave)
    if remaining is not None:
        logits_out[running] = model.forward_head(model.norm(remaining)).float()
    return logits_out, exit_of
