"""``sweep``: one tuning budget for every method. Train a recipe at each value of one key (usually the
learning rate) with the test split switched off, choose the value on validation only, then evaluate
the test split once, on the chosen run.

Runs go to ``RUN_DIR/<last key part>-<value>/`` (``lr-1e-3``) beside ``RUN_DIR/sweep.json`` (the grid, each point's best
validation top-1, the choice and its test metrics); a point whose run already finished is reused, so
an interrupted sweep continues where it stopped.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from sttool.engine.distributed import DistContext
from sttool.engine.evaluate import evaluate
from sttool.engine.sampling import eval_loader
from sttool.engine.trainer import finetune
from sttool.errors import SttoolError
from sttool.progress import SILENT, Progress
from sttool.runs.folder import RESULTS_FILE, write_text
from sttool.runs.load import input_spec, load_run
from sttool.runs.recipe import Recipe, load_recipe
from sttool.runtime import resolve_device

SWEEP_FILE = "sweep.json"


def parse_grid(text: str) -> tuple[str, list[str]]:
    """``optim.lr=5e-4,1e-3,2e-3`` -> (``optim.lr``, [``5e-4``, ``1e-3``, ``2e-3``])."""
    key, _, values = text.partition("=")
    grid = [v.strip() for v in values.split(",") if v.strip()]
    if not key.strip() or not grid:
        raise SttoolError(f"--grid '{text}': expected key=v1,v2,... (for example optim.lr=5e-4,1e-3,2e-3)")
    if len(set(grid)) != len(grid):
        raise SttoolError(f"--grid '{text}': a value is repeated")
    return key.strip(), grid


def _point(path: Path, key: str, value: str, overrides: list[str], sweep_dir: Path) -> Recipe:
    folder = sweep_dir / f"{key.rsplit('.', 1)[-1]}-{value}"
    return load_recipe(path, [*overrides, f"{key}={value}", f"output_dir={folder}", "data.test_split=none"])


def sweep(path: Path, key: str, values: list[str], overrides: list[str] | None = None, overwrite: bool = False,
          progress: Progress = SILENT) -> dict[str, Any]:
    """Train ``path`` at ``key=value`` for every value, choose on val, test the choice once."""
    overrides = list(overrides or [])
    base = load_recipe(path, overrides)
    if base.train.select != "val":
        raise SttoolError(f"{path}: train.select is '{base.train.select}'; a sweep chooses on validation, set train.select=val")
    sweep_dir = base.run_dir
    points = []
    for value in values:
        recipe = _point(path, key, value, overrides, sweep_dir)
        finished = (recipe.run_dir / RESULTS_FILE).is_file() and not overwrite
        if finished:
            results = json.loads((recipe.run_dir / RESULTS_FILE).read_text())
        else:
            resume = not overwrite and (recipe.run_dir / "checkpoints" / "last.safetensors").is_file()
            progress.note(f"{key}={value}: {recipe.run_dir}")
            results = finetune(recipe, resume=resume, progress=progress, overwrite=overwrite)
            if results.get("status") == "interrupted":
                raise SttoolError(f"the sweep was interrupted at {key}={value}; run the same command again to continue")
        if not results.get("best"):
            raise SttoolError(f"{recipe.run_dir}: no validation result; a sweep needs a val split")
        points.append({"value": value, "run": str(recipe.run_dir), "val_top1": results["best"]["top1"],
                       "best_epoch": results["best"]["epoch"]})
    chosen = max(points, key=lambda p: p["val_top1"])  # the first of equals: the grid's order decides ties
    test = _test_once(Path(chosen["run"]), base)
    report = {"recipe": str(path), "key": key, "points": points, "chosen": chosen, "test": test}
    write_text(sweep_dir / SWEEP_FILE, json.dumps(report, indent=2))
    return report


def _test_once(run: Path, base: Recipe) -> dict[str, Any]:
    """The chosen run's checkpoint on the base recipe's test split (the sweep's runs had it switched off)."""
    from sttool.data import build_dataset, has_split

    if not has_split(base.data, "test"):
        raise SttoolError(f"the data of {base.name} ({base.data.dataset} at {base.data.root}) has no test split to report")
    context = DistContext()
    device = resolve_device(base.train.device)
    model, recipe, _ = load_run(run, device)
    dataset = build_dataset(base.data, "test", input_spec(model), train=False)
    loader = eval_loader(dataset, replace(recipe, data=base.data), context)
    sample_ndim = 4 if recipe.model.num_frames else 3
    with torch.no_grad():
        return evaluate(model, loader, device, recipe.train.precision, recipe.num_classes, context, sample_ndim)
