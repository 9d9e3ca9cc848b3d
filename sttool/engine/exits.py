"""Training and calibrating exits (MET, arXiv 2409.13999): the multi-exit loss, the thresholds chosen on
validation by MSDNet's budgeted batch classification, and early-exit inference measured on real batches.

Loss:

    L = sum_k w_k CE(z_k, t) / sum_k w_k
        + lambda_g * sum_{k<K} G(f_k)                        (optional graph regularisation)
        + lambda_d * sum_{k<K} T^2 KL(softmax(z_K / T) || softmax(z_k / T))   (optional, z_K detached)

G(f) = sum_ij W_ij ||f_i/|f_i| - f_j/|f_j|||^2 / sum_ij W_ij is the Laplacian smoothness of the
normalised early-exit features over a graph of the batch: W_ij = <t_i, t_j> from the (soft, mixed)
targets, so samples of a class are pulled together, or W_ij = max(0, cos(f_K,i, f_K,j)) from the
last exit's features. MET's abstract names graph regularisation of early-exit features; this form is ours.

Thresholds: for a target exit distribution q_k proportional to p^k (p swept from 0.05 to 1.95, as in
MSDNet's code), walk the exits in order: among the samples still running, the floor(N q_k) most
confident at exit k leave there, and the confidence of the last of them becomes the threshold tau_k.
Thresholds come from the validation split only; the test split gives each point's accuracy and
expected GFLOPs. The exit heads and the exit policy itself are ``models.exits``.
"""

from __future__ import annotations

import math
import time
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from sttool.engine.distributed import DistContext
from sttool.engine.objectives import soft_cross_entropy
from sttool.engine.sampling import eval_loader
from sttool.errors import SttoolError
from sttool.models.exits import exit_assignment, predict_early_exit
from sttool.models.vit import SparseViT
from sttool.profiling.flops import count_flops
from sttool.runs.recipe import ExitsConfig, Recipe
from sttool.runtime import autocast, sync


def graph_smoothness(features: Tensor, weights: Tensor) -> Tensor:
    """Weighted mean squared distance between normalised features (B, C) over a graph (B, B)."""
    unit = F.normalize(features.float(), dim=-1)
    distances = torch.cdist(unit, unit).pow(2)  # (B, B)
    weights = weights * (1 - torch.eye(weights.shape[0], device=weights.device))
    return (weights * distances).sum() / weights.sum().clamp_min(1e-6)


class MultiExitLoss(nn.Module):
    """The loss above, from every exit's (features, logits) and soft targets."""

    def __init__(self, config: ExitsConfig, num_exits: int) -> None:
        super().__init__()
        weights = config.loss_weights or [1.0] * num_exits
        if len(weights) != num_exits:
            raise SttoolError(
                f"exits.loss_weights: {len(weights)} weights for {num_exits} exits (early exits and the final head)"
            )
        self.weights = [w / sum(weights) for w in weights]
        self.config = config

    def forward(self, outputs: list[tuple[Tensor, Tensor]], targets: Tensor) -> Tensor:
        config = self.config
        loss = torch.stack([w * soft_cross_entropy(logits, targets) for w, (_, logits) in zip(self.weights, outputs, strict=True)]).sum()
        final_features, final_logits = outputs[-1]
        if config.graph != "none" and config.graph_weight > 0 and targets.shape[0] > 1:
            if config.graph == "labels":
                graph = targets @ targets.T
            else:
                unit = F.normalize(final_features.detach().float(), dim=-1)
                graph = (unit @ unit.T).clamp_min(0)
            loss = loss + config.graph_weight * torch.stack([graph_smoothness(f, graph) for f, _ in outputs[:-1]]).sum()
        if config.distill_weight > 0:
            temperature = config.distill_temperature
            teacher = (final_logits.detach().float() / temperature).softmax(dim=-1)
            for _, logits in outputs[:-1]:
                student = (logits.float() / temperature).log_softmax(dim=-1)
                loss = loss + config.distill_weight * temperature**2 * F.kl_div(student, teacher, reduction="batchmean")
        return loss


class ExitsForward(nn.Module):
    """Training view of a multi-exit model: ``forward`` returns every exit (DDP wraps this module)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> list[tuple[Tensor, Tensor]]:
        model: Any = self.model  # a SparseViT with exits
        return model.forward_exits(x)


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
        with autocast(device, precision):
            outputs = cast(SparseViT, model).forward_exits(inputs)
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


def calibrate_run(model: SparseViT, recipe: Recipe, val: Dataset | None, test: Dataset | None,
                  device: torch.device) -> dict[str, Any]:
    """The exits report: per-exit accuracy, the accuracy/expected-GFLOPs curve, the operating point."""
    if val is None:
        raise SttoolError("exits are calibrated on the validation split, and this data has none; "
                          "set data.val_from_train=0.1 (never calibrate on test)")
    alone = DistContext()
    sample_ndim = 4 if recipe.model.num_frames else 3
    flops = count_flops(model)
    val_probs = collect_exit_probs(model, eval_loader(val, recipe, alone), device, recipe.train.precision, sample_ndim)
    test_probs = (collect_exit_probs(model, eval_loader(test, recipe, alone), device, recipe.train.precision, sample_ndim)
                  if test is not None else None)
    report = calibrate(val_probs, test_probs, flops.cost_to_exit(), flops.gflops, recipe.exits)
    report["exit_layers"] = [b + 1 for b in flops.exit_blocks]
    return report


@torch.no_grad()
def measure_early_exit(model: SparseViT, loader, thresholds: list[float], device: torch.device,
                       sample_ndim: int) -> dict[str, Any] | None:
    """Early-exit inference with batch compaction on real batches: accuracy, exits and images/s,
    timed batch by batch against the same model without early exit. None for multi-view clips."""
    model.eval()
    num_exits = len(model.exits.blocks) + 1
    correct, total, counts = 0, 0, [0] * num_exits
    seconds = {"exit": 0.0, "plain": 0.0}
    for batch in loader:
        if batch.inputs.shape[0] == 0:
            continue
        if batch.inputs.ndim == sample_ndim + 2:
            return None
        inputs, labels = batch.inputs.to(device), batch.labels.to(device)
        for name in ("exit", "plain"):
            sync(device)
            start = time.perf_counter()
            if name == "exit":
                logits, exit_of = predict_early_exit(model, inputs, thresholds)
            else:
                model(inputs)
            sync(device)
            seconds[name] += time.perf_counter() - start
        correct += int((logits.argmax(-1) == labels).sum())
        total += labels.shape[0]
        counts = [c + n for c, n in zip(counts, torch.bincount(exit_of, minlength=num_exits).tolist(), strict=True)]
    return {
        "top1": 100 * correct / max(total, 1),
        "exit_fractions": [c / max(total, 1) for c in counts],
        "images_per_s": total / max(seconds["exit"], 1e-9),
        "no_exit_images_per_s": total / max(seconds["plain"], 1e-9),
    }
