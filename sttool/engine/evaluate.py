"""Evaluation: top-1, top-5, per-class accuracy and loss, with multi-view predictions averaged.

Counts stay on the device until the end and are summed over processes, so every process evaluates
its own shard of the split and the metrics are exact.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from sttool.engine.distributed import DistContext

AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast_for(device: torch.device, precision: str):
    """Mixed precision on CUDA only; CPU runs in fp32."""
    if device.type == "cuda" and precision in AUTOCAST:
        return torch.autocast("cuda", dtype=AUTOCAST[precision])
    return nullcontext()


def average_views(logits: Tensor, batch: int) -> Tensor:
    """Class probabilities averaged over the views of each sample: (B * V, K) -> (B, K)."""
    return logits.float().softmax(dim=-1).view(batch, -1, logits.shape[-1]).mean(dim=1)


class ClassificationCounts:
    """Running correct/total counts per class, top-5 hits, summed loss and skipped samples."""

    def __init__(self, num_classes: int, device: torch.device) -> None:
        self.correct = torch.zeros(num_classes, device=device, dtype=torch.float64)
        self.total = torch.zeros(num_classes, device=device, dtype=torch.float64)
        self.top5 = torch.zeros((), device=device, dtype=torch.float64)
        self.loss = torch.zeros((), device=device, dtype=torch.float64)
        self.skipped = torch.zeros((), device=device, dtype=torch.float64)

    def add(self, probs: Tensor, labels: Tensor) -> None:
        top = probs.topk(min(5, probs.shape[-1]), dim=-1).indices  # (B, 5)
        hit1 = (top[:, 0] == labels).double()
        self.correct.index_add_(0, labels, hit1)
        self.total.index_add_(0, labels, torch.ones_like(hit1))
        self.top5 += (top == labels.unsqueeze(1)).any(dim=1).double().sum()
        self.loss -= probs.gather(1, labels.unsqueeze(1)).clamp_min(1e-12).log().double().sum()

    def summary(self, context: DistContext) -> dict[str, Any]:
        for tensor in (self.correct, self.total, self.top5, self.loss, self.skipped):
            context.all_reduce(tensor)
        count = float(self.total.sum())
        per_class = torch.where(self.total > 0, 100 * self.correct / self.total.clamp_min(1), torch.nan)
        return {
            "top1": 100 * float(self.correct.sum()) / max(count, 1),
            "top5": 100 * float(self.top5) / max(count, 1),
            "loss": float(self.loss) / max(count, 1),
            "per_class": [None if torch.isnan(v) else round(float(v), 4) for v in per_class],
            "num_samples": int(count),
            "skipped": int(self.skipped),
        }


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader, device: torch.device, precision: str,
             num_classes: int, context: DistContext, sample_ndim: int) -> dict[str, Any]:
    """Metrics of ``model`` over ``loader``; ``sample_ndim`` is 3 for images, 4 for clips."""
    model.eval()
    counts = ClassificationCounts(num_classes, device)
    for batch in loader:
        counts.skipped += len(batch.skipped)
        if batch.inputs.shape[0] == 0:
            continue
        inputs = batch.inputs.to(device, non_blocking=True)
        labels = batch.labels.to(device, non_blocking=True)
        size = inputs.shape[0]
        if inputs.ndim == sample_ndim + 2:  # (B, V, ...) multi-view: views become batch entries
            inputs = inputs.flatten(0, 1)
        with autocast_for(device, precision):
            logits = model(inputs)
        counts.add(average_views(logits, size), labels)
    return counts.summary(context)
