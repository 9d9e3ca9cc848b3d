"""Evaluation: top-1, top-5, per-class accuracy and loss, with multi-view predictions averaged; and the
evaluation of a run folder or checkpoint on a split, with GFLOPs, throughput and early exits.

Counts stay on the device until the end and are summed over processes, so every process evaluates
its own shard of the split and the metrics are exact.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from sttool.engine.distributed import DistContext
from sttool.engine.exits import measure_early_exit
from sttool.engine.sampling import eval_loader
from sttool.errors import SttoolError
from sttool.models.build import count_parameters
from sttool.profiling.flops import count_flops, gflops_report
from sttool.profiling.timing import compare_throughput
from sttool.runs.folder import RunDir
from sttool.runs.load import input_spec, load_run, run_folder_of
from sttool.runtime import autocast, input_shape, resolve_device


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
        with autocast(device, precision):
            logits = model(inputs)
        counts.add(average_views(logits, size), labels)
    return counts.summary(context)


def evaluate_checkpoint(target: Path, split: str = "test", batch_size: int | None = None, device: str = "auto",
                        throughput: bool = True) -> dict[str, Any]:
    """Metrics of a trained model on ``split`` of its recipe's data, with GFLOPs and images/s."""
    context = DistContext()
    torch_device = resolve_device(device)
    model, recipe, path = load_run(target, torch_device)
    recipe = replace(recipe, train=replace(recipe.train, eval_batch_size=batch_size or recipe.train.eval_batch_size))
    from sttool.data import build_dataset, has_split

    if not has_split(recipe.data, split):
        raise SttoolError(f"the data of {path} ({recipe.data.dataset} at {recipe.data.root}) has no '{split}' split")
    dataset = build_dataset(recipe.data, split, input_spec(model), train=False)
    loader = eval_loader(dataset, recipe, context)
    sample_ndim = 4 if recipe.model.num_frames else 3
    metrics = evaluate(model, loader, torch_device, recipe.train.precision, recipe.num_classes, context, sample_ndim)
    flops = count_flops(model)
    views = recipe.data.test_clips * recipe.data.test_crops if recipe.model.num_frames else 1
    dense_gflops = gflops_report(recipe.model)["dense_gflops"]
    report: dict[str, Any] = {
        "run": recipe.name, "checkpoint": str(path), "split": split, "dataset": recipe.data.dataset,
        "method": recipe.model.method, "gflops_ratio": flops.gflops / dense_gflops, "dense_gflops": dense_gflops,
        **metrics, "class_names": list(dataset.class_names), "views": views,
        "gflops_per_view": flops.gflops, "gflops": flops.gflops * views,
        "tokens_per_stage": flops.tokens_per_stage, "params": count_parameters(model),
    }
    exits = RunDir(run_folder_of(path)).read_exits() if getattr(model, "exits", None) is not None else None
    if exits is not None:
        point = exits.get("operating_point")
        if point is not None:
            exits["measured"] = measure_early_exit(model, loader, point["thresholds"], torch_device, sample_ndim)
        report["exits"] = exits
    if throughput:
        eval_batch = recipe.train.eval_batch_size or recipe.train.batch_size
        measured = compare_throughput({"model": model}, input_shape(model), eval_batch, torch_device, recipe.train.precision,
                                      rounds=5, warmup=1)["model"]
        report["throughput"] = measured
    return report
