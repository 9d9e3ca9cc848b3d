"""The exit policy: a sample leaves at the first exit whose confidence (max softmax) reaches its threshold.

Samples that exit leave the batch: the tokens and the adapter history are compacted to the samples
still running, so the later blocks really process a smaller batch and saved FLOPs become saved time.
Every exit reached is evaluated on the way, and counted in the expected cost (``flops.exit_costs``).
"""

from __future__ import annotations

import torch
from torch import Tensor

from sttool.models.state import ForwardState
from sttool.models.vit import SparseViT


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
    logits_out = torch.zeros(batch, model.head.out_features, device=x.device)
    exit_of = torch.full((batch,), len(exits.blocks), dtype=torch.long, device=x.device)
    running = torch.arange(batch, device=x.device)  # original indices of the samples still in the batch
    tokens = model.embed(x)
    state = ForwardState(history=model.initial_history(tokens))
    for index, block in enumerate(model.blocks):
        tokens = block(tokens, state)
        state.selections.clear()  # nothing looks back at them here; do not keep the large batch alive
        if index not in exits.blocks:
            continue
        k = exits.blocks.index(index)
        _, logits = exits(k, tokens, model.num_prefix_tokens)
        done = confidence(logits) >= thresholds[k]
        logits_out[running[done]] = logits[done].float()
        exit_of[running[done]] = k
        stay = (~done).nonzero().squeeze(1)
        if stay.numel() == 0:
            return logits_out, exit_of
        if stay.numel() < running.numel():
            running, tokens = running[stay], tokens[stay]  # (B', N, C): exited samples leave the batch
            state.index_select(stay)
    logits_out[running] = model.forward_head(model.norm(tokens)).float()
    return logits_out, exit_of
