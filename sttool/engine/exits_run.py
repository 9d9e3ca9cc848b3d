"""Calibrate a trained multi-exit model on its run's validation split and record the curve in the run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from sttool.config.recipe import Recipe
from sttool.engine import setup
from sttool.engine.distributed import DistContext
from sttool.engine.exit_calibration import calibrate, collect_exit_probs
from sttool.engine.run_dir import EXITS_FILE
from sttool.errors import SttoolError
from sttool.flops import count_flops
from sttool.models.early_exit import predict_early_exit
from sttool.models.vit import SparseViT


def calibrate_run(model: SparseViT, recipe: Recipe, val: Dataset | None, test: Dataset | None,
                  device: torch.device) -> dict[str, Any]:
    """The exits report: per-exit accuracy, the accuracy/expected-GFLOPs curve, the operating point."""
    if val is None:
        raise SttoolError("exits are calibrated on the validation split, and this data has none; "
                          "set data.val_from_train=0.1 (never calibrate on test)")
    alone = DistContext()
    sample_ndim = 4 if recipe.model.num_frames else 3
    flops = count_flops(model)
    val_probs = collect_exit_probs(model, setup.eval_loader(val, recipe, alone), device, recipe.train.precision, sample_ndim)
    test_probs = (collect_exit_probs(model, setup.eval_loader(test, recipe, alone), device, recipe.train.precision, sample_ndim)
                  if test is not None else None)
    report = calibrate(val_probs, test_probs, flops.cost_to_exit(), flops.gflops, recipe.exits)
    report["exit_layers"] = [b + 1 for b in flops.exit_blocks]
    return report


def write_exits(run_dir: Path, report: dict[str, Any]) -> Path:
    path = run_dir / EXITS_FILE
    path.write_text(json.dumps(report, indent=2), encoding="utf-8")
    return path


def read_exits(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / EXITS_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


@torch.no_grad()
def measure_early_exit(model: SparseViT, loader, thresholds: list[float], device: torch.device,
                       sample_ndim: int) -> dict[str, Any] | None:
    """Early-exit inference with batch compaction on real batches: accuracy, exits and images/s,
    timed batch by batch against the same model without early exit. None for multi-view clips."""
    import time

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
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            if name == "exit":
                logits, exit_of = predict_early_exit(model, inputs, thresholds)
            else:
                model(inputs)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
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
