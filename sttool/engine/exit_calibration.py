"""Exit thresholds by MSDNet's budgeted batch classification, calibrated on validation, reported on test.

For a target exit distribution q_k proportional to p^k (p swept from 0.05 to 1.95, as in MSDNet's
code), walk the exits in order: among the samples still running, the floor(N q_k) most confident at
exit k leave there, and the confidence of the last of them becomes the threshold tau_k. Thresholds
come from the validation split only; the test split gives each point's accuracy and expected GFLOPs.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from sttool.config.exits import ExitsConfig
from sttool.engine.evaluate import autocast_for
from sttool.models.early_exit import exit_assignment


@torch.no_grad()
def collect_exit_probs(model: nn.Module, loader: DataLoader, device: torch.device, precision: str,
                       sample_ndim: int) -> tuple[Tensor, Tensor]:
    """Softmax of every exit for every sample, views averaged: (K, N, classes), and labels (N,)."""
    model.eval()
    probs, labels = [], []
    for batch in loader:
        if batch.inputs.shape[0] == 0:
            continue
        inputs = batch.inputs.to(device, non_blocking=True)
        size = inputs.shape[0]
        if inputs.ndim == sample_ndim + 2:
            inputs = inputs.flatten(0, 1)  # (B * V, ...)
        with autocast_for(device, precision):
            outputs = model.forward_exits(inputs)
        exit_probs = [logits.float().softmax(-1).view(size, -1, logits.shape[-1]).mean(1) for _, logits in outputs]
        probs.append(torch.stack(exit_probs).cpu())
        labels.append(batch.labels)
    return torch.cat(probs, dim=1), torch.cat(labels)


def geometric_fractions(p: float, num_exits: int) -> list[float]:
    """MSDNet's exit distribution: q_k proportional to p^k, k = 1..K."""
    weights = [p ** (k + 1) for k in range(num_exits)]
    return [w / sum(weights) for w in weights]


def budgeted_thresholds(confidences: Tensor, fractions: list[float]) -> list[float]:
    """Thresholds of the K-1 early exits that send ``fractions`` of the samples to each exit."""
    count = confidences.shape[1]
    running = torch.ones(count, dtype=torch.bool)
    thresholds = []
    for k in range(confidences.shape[0] - 1):
        leaving = min(math.floor(count * fractions[k]), int(running.sum()))
        if leaving == 0:
            thresholds.append(math.inf)
            continue
        candidates = confidences[k][running].sort(descending=True).values
        threshold = float(candidates[leaving - 1])
        thresholds.append(threshold)
        running &= confidences[k] < threshold
    return thresholds


def operating(probs: Tensor, labels: Tensor, thresholds: list[float], costs: list[int]) -> dict[str, Any]:
    """Top-1, expected GFLOPs and exit histogram of thresholds on cached exit probabilities."""
    confidences = probs.amax(dim=-1)  # (K, N)
    exits = exit_assignment(confidences, thresholds)
    predictions = probs.argmax(dim=-1)[exits, torch.arange(labels.shape[0])]
    counts = torch.bincount(exits, minlength=probs.shape[0]).tolist()
    return {
        "top1": 100 * float((predictions == labels).double().mean()),
        "gflops": sum(n * c for n, c in zip(counts, costs, strict=True)) / max(labels.shape[0], 1) / 1e9,
        "exit_fractions": [n / max(labels.shape[0], 1) for n in counts],
    }


def per_exit_accuracy(probs: Tensor, labels: Tensor) -> list[float]:
    """Top-1 of each exit on every sample (anytime prediction)."""
    return [100 * float((p.argmax(-1) == labels).double().mean()) for p in probs]


def calibrate(val: tuple[Tensor, Tensor], test: tuple[Tensor, Tensor] | None, costs: list[int],
              no_exit_gflops: float, config: ExitsConfig) -> dict[str, Any]:
    """The accuracy/expected-GFLOPs curve and the chosen operating point (chosen on val only)."""
    val_probs, val_labels = val
    confidences = val_probs.amax(dim=-1)
    num_exits = val_probs.shape[0]
    steps = [0.05 + i * (1.9 / (config.sweep_points - 1)) for i in range(config.sweep_points)]
    curve = []
    for p in steps:
        fractions = geometric_fractions(p, num_exits)
        thresholds = budgeted_thresholds(confidences, fractions)
        point = {"p": round(p, 4), "target_fractions": fractions, "thresholds": thresholds,
                 "val": operating(val_probs, val_labels, thresholds, costs)}
        if test is not None:
            point["test"] = operating(*test, thresholds, costs)
        curve.append(point)
    full_val = per_exit_accuracy(val_probs, val_labels)[-1]
    chosen = choose_point(curve, full_val, no_exit_gflops, config)
    return {
        "cost_to_exit_gflops": [c / 1e9 for c in costs], "no_exit_gflops": no_exit_gflops,
        "per_exit_top1": {"val": per_exit_accuracy(val_probs, val_labels),
                          **({"test": per_exit_accuracy(*test)} if test is not None else {})},
        "curve": curve, "operating_point": chosen,
        "rule": (f"least expected GFLOPs with val top-1 >= {full_val:.2f} - {config.max_accuracy_drop}"
                 if config.operating_point == "accuracy_drop" else
                 f"best val top-1 with expected GFLOPs <= {config.budget:g} x {no_exit_gflops:.4f}"),
    }


def choose_point(curve: list[dict[str, Any]], full_val_top1: float, no_exit_gflops: float,
                 config: ExitsConfig) -> dict[str, Any] | None:
    """The operating point by accuracy drop or by budget, judged on the validation split only."""
    if config.operating_point == "accuracy_drop":
        good = [pt for pt in curve if pt["val"]["top1"] >= full_val_top1 - config.max_accuracy_drop]
        return min(good, key=lambda pt: pt["val"]["gflops"]) if good else None
    within = [pt for pt in curve if pt["val"]["gflops"] <= config.budget * no_exit_gflops]
    return max(within, key=lambda pt: (pt["val"]["top1"], -pt["val"]["gflops"])) if within else None
