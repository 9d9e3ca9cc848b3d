"""Evaluate a run folder or checkpoint on a split: accuracy, per-class accuracy, GFLOPs, throughput."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from sttool.config.recipe import Recipe, bind_recipe
from sttool.engine import setup
from sttool.engine.checkpoint import load_trained_state, read_checkpoint
from sttool.engine.distributed import DistContext, resolve_device
from sttool.engine.evaluate import evaluate
from sttool.engine.exits_run import measure_early_exit, read_exits
from sttool.engine.run_dir import BEST, LAST
from sttool.errors import SttoolError
from sttool.flops import count_flops
from sttool.models.build import count_parameters
from sttool.models.vit import SparseViT
from sttool.profiling.gflops import gflops_report
from sttool.profiling.throughput import compare_throughput


def find_checkpoint(target: Path) -> Path:
    """The checkpoint a run folder was judged by (best on val, else last), or the file itself."""
    if target.is_dir():
        for name in (BEST, LAST):
            if (target / name).is_file():
                return target / name
        raise SttoolError(f"{target} holds no checkpoint ({BEST} or {LAST}); is it a run folder?")
    if not target.exists():
        raise SttoolError(f"no run folder or checkpoint at {target}")
    return target


def load_checkpoint_model(target: Path, device: torch.device | None = None) -> tuple[SparseViT, Recipe, Path]:
    """The trained model of a run folder or checkpoint, its recipe and the checkpoint path."""
    path = find_checkpoint(target)
    state, _, meta = read_checkpoint(path)
    recipe = bind_recipe(meta["recipe"], f"{path} (recipe):")
    model = setup.create_model(recipe, device or torch.device("cpu"))
    load_trained_state(model, state, str(path))
    return model.eval(), recipe, path


def evaluate_checkpoint(target: Path, split: str = "test", batch_size: int | None = None, device: str = "auto",
                        throughput: bool = True) -> dict[str, Any]:
    """Metrics of a trained model on ``split`` of its recipe's data, with GFLOPs and images/s."""
    context = DistContext()
    torch_device = resolve_device(device, context)
    model, recipe, path = load_checkpoint_model(target, torch_device)
    recipe = replace(recipe, train=replace(recipe.train, eval_batch_size=batch_size or recipe.train.eval_batch_size))
    from sttool.data import build_dataset, has_split

    if not has_split(recipe.data, split):
        raise SttoolError(f"the data of {path} ({recipe.data.dataset} at {recipe.data.root}) has no '{split}' split")
    dataset = build_dataset(recipe.data, split, setup.input_spec(model), train=False)
    loader = setup.eval_loader(dataset, recipe, context)
    sample_ndim = 4 if recipe.model.num_frames else 3
    metrics = evaluate(model, loader, torch_device, recipe.train.precision, recipe.model.num_classes, context, sample_ndim)
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
    exits = read_exits(path.parent.parent) if getattr(model, "exits", None) is not None else None
    if exits is not None:
        point = exits.get("operating_point")
        if point is not None:
            exits["measured"] = measure_early_exit(model, loader, point["thresholds"], torch_device, sample_ndim)
        report["exits"] = exits
    if throughput:
        shape = (3, recipe.model.num_frames, *model.patch_embed.img_size) if recipe.model.num_frames else (3, *model.patch_embed.img_size)
        eval_batch = recipe.train.eval_batch_size or recipe.train.batch_size
        precision = recipe.train.precision if torch_device.type == "cuda" else "fp32"
        measured = compare_throughput({"model": model}, shape, eval_batch, torch_device, precision, rounds=5, warmup=1)["model"]
        report["throughput"] = measured
    return report
