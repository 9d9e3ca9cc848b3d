"""Accuracy against GFLOPs of a tuned model when its pruning blocks keep other shares of the tokens
at inference (no retraining): the keep rate is an attribute of each pruning block, so it can change."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from sttool.engine.distributed import DistContext
from sttool.engine.evaluate import evaluate
from sttool.engine.sampling import eval_loader
from sttool.errors import SttoolError
from sttool.models.vit import SparseViT
from sttool.profiling.flops import count_flops
from sttool.runs.folder import RunDir
from sttool.runs.load import input_spec, load_run
from sttool.runs.recipe import Recipe

DEFAULT_RATES = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


def set_keep_rate(model: SparseViT, rate: float) -> None:
    """Make the blocks listed in ``keep_layers`` (1-based) keep ``rate`` of their candidates (1: all)."""
    model.set_keep_rate(rate)


def check_rates(rates: Sequence[float]) -> None:
    bad = [rate for rate in rates if not 0.0 < rate <= 1.0]
    if bad or not rates:
        raise SttoolError(f"--keep-rates: {list(rates)} must be numbers in (0, 1], e.g. 0.5,0.7,1.0")


@torch.no_grad()
def keep_rate_sweep(model: SparseViT, recipe: Recipe, dataset: Dataset, rates: Sequence[float],
                    device: torch.device) -> list[dict[str, Any]]:
    """Top-1 on ``dataset`` and GFLOPs (per view) at each keep rate; the model's own rates are restored after."""
    check_rates(rates)
    context = DistContext()
    loader = eval_loader(dataset, recipe, context)
    sample_ndim = 4 if recipe.model.num_frames else 3
    saved = [block.keep_rate for block in model.sparse_blocks()]
    points = []
    try:
        for rate in rates:
            set_keep_rate(model, rate)
            metrics = evaluate(model, loader, device, recipe.train.precision, recipe.num_classes, context, sample_ndim)
            flops = count_flops(model)
            points.append({"keep_rate": rate, "gflops": flops.gflops, "top1": metrics["top1"],
                           "tokens_per_stage": flops.tokens_per_stage})
    finally:
        for block, kept in zip(model.sparse_blocks(), saved, strict=True):
            block.keep_rate = kept
    return points


def tradeoff_report(run: Path, rates: Sequence[float] = DEFAULT_RATES, split: str = "test", device: torch.device | None = None,
                    batch_size: int | None = None, dataset: Dataset | None = None) -> dict[str, Any]:
    """The keep-rate curve of a run on ``split`` (its recipe's data unless ``dataset`` is given; the
    run's own keep rate is always one of the points) and, when the run has calibrated exits, their
    accuracy/expected-GFLOPs curve on the same split."""
    check_rates(rates)
    device = device or torch.device("cpu")
    model, recipe, checkpoint = load_run(run, device)
    if batch_size is not None:
        recipe = replace(recipe, train=replace(recipe.train, eval_batch_size=batch_size))
    if dataset is None:
        from sttool.data import build_dataset, has_split

        if not has_split(recipe.data, split):
            raise SttoolError(f"the data of {checkpoint} ({recipe.data.dataset} at {recipe.data.root}) has no '{split}' split")
        dataset = build_dataset(recipe.data, split, input_spec(model), train=False)
    tuned = recipe.model.resolved().keep_rate or 1.0
    run_dir = run if run.is_dir() else checkpoint.parent.parent
    exits = RunDir(run_dir).read_exits()
    exit_curve = None
    if exits is not None:
        exit_curve = [{"p": pt["p"], "gflops": pt[split]["gflops"], "top1": pt[split]["top1"]}
                      for pt in exits["curve"] if split in pt]
    return {
        "run_dir": str(run_dir), "checkpoint": str(checkpoint), "split": split,
        "tuned_keep_rate": tuned,
        "keep_rate_curve": keep_rate_sweep(model, recipe, dataset, sorted({*rates, tuned}), device),
        "exit_curve": exit_curve,
    }
