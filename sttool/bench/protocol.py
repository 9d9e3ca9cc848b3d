"""One bench cell (a task, a method, a seed) under VTAB-1K's honest protocol.

1. Grid: train on train800 at each grid value, validate on val200 after the last epoch (the test split
   is switched off); choose the value with the best last-epoch val top-1 (the first of equals, in the
   grid's order).
2. Final: train on train800val200 at the chosen value (no val split, the last epoch is kept).
3. Test: the final run evaluates the test split once.

Every training is a normal run folder under ``OUT/cells/<task>/<method>/seed<k>/``; a finished one is
reused and a started one resumed, so a killed bench goes on where it stopped and nothing is trained
twice. The cell's outcome is written atomically to ``seed<k>.json`` beside that folder.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sttool.bench.suite import BenchMethod, Suite
from sttool.data.vtab import vtab_class_count
from sttool.engine.trainer import finetune
from sttool.errors import SttoolError
from sttool.profiling.flops import gflops_report
from sttool.progress import SILENT, Progress
from sttool.runs.folder import ENV_FILE, RESULTS_FILE, write_text
from sttool.runs.recipe import Recipe, load_recipe


@dataclass(frozen=True)
class Cell:
    task: str
    method: str
    seed: int

    def folder(self, out: Path) -> Path:
        return out / "cells" / self.task / self.method / f"seed{self.seed}"

    def result_file(self, out: Path) -> Path:
        return out / "cells" / self.task / self.method / f"seed{self.seed}.json"


def _train(recipe: Recipe, progress: Progress) -> tuple[dict[str, Any], float]:
    """Train (or reuse, or resume) one run; (its results, its seconds: timed here, or for a finished run
    reused, from its env.json written at the start to its results.json written at the end)."""
    results_file = recipe.run_dir / RESULTS_FILE
    if results_file.is_file():
        started = recipe.run_dir / ENV_FILE
        seconds = results_file.stat().st_mtime - started.stat().st_mtime if started.is_file() else 0.0
        return json.loads(results_file.read_text()), seconds
    resume = (recipe.run_dir / "checkpoints" / "last.safetensors").is_file()
    start = time.perf_counter()
    results = finetune(recipe, resume=resume, progress=progress)
    if results.get("status") == "interrupted":
        raise SttoolError(f"the bench was interrupted in {recipe.run_dir}; run the same command again to continue")
    return results, time.perf_counter() - start


def _recipe(path: Path, overrides: list[str], folder: Path, name: str, last_epoch_val: bool) -> Recipe:
    recipe = load_recipe(path, [*overrides, f"name={name}", f"output_dir={folder}"])
    if last_epoch_val:  # validate once, after the last epoch: what the final run keeps
        recipe = replace(recipe, train=replace(recipe.train, eval_every=recipe.train.epochs))
    return recipe


def run_cell(suite: Suite, cell: Cell, out: Path, root: str, grid: tuple[str, ...] | None,
             overrides: list[str], progress: Progress = SILENT) -> dict[str, Any]:
    """Grid on train800 -> val200 (unless ``grid`` is None: the method's fixed value), final run on
    train800val200, test once; returns (and writes) the cell's row of the results."""
    method: BenchMethod = suite.methods[cell.method]
    path = suite.recipe_for(cell.task)
    base = [*method.overrides, f"data.root={root}", f"data.task={cell.task}", f"train.seed={cell.seed}", *overrides]
    folder, key, leaf = cell.folder(out), suite.grid_key, suite.grid_key.rsplit(".", 1)[-1]
    label = f"{cell.task}/{cell.method}/seed{cell.seed}"
    name = f"{suite.name}-{cell.task}-{cell.method}-seed{cell.seed}"
    points, seconds = [], 0.0
    for value in grid or ():
        recipe = _recipe(path, [*base, f"{key}={value}", "data.train_split=train800", "data.val_split=val200",
                                "data.test_split=none", "train.select=last"],
                         folder / f"{leaf}-{value}", f"{name}-{leaf}-{value}", last_epoch_val=True)
        progress.note(f"{label}: {key}={value} on train800 -> val200")
        results, spent = _train(recipe, progress)
        seconds += spent
        if not results.get("best"):
            raise SttoolError(f"{recipe.run_dir}: no val200 result; the grid needs the task's val200 list")
        points.append({"value": value, "val_top1": results["best"]["top1"]})
    chosen = max(points, key=lambda p: p["val_top1"])["value"] if points else method.value
    final = _recipe(path, [*base, f"{key}={chosen}", "data.train_split=train800val200", "data.val_split=none",
                           "train.select=last"], folder / "final", f"{name}-final", last_epoch_val=False)
    progress.note(f"{label}: final run at {key}={chosen} on train800val200, test once")
    results, spent = _train(final, progress)
    if "test" not in results:
        raise SttoolError(f"{final.run_dir}: no test result; the task needs its test list")
    classes = vtab_class_count(cell.task, final.data.num_classes, "data", root)
    dense = gflops_report(replace(final.model, num_classes=classes))["dense_gflops"]
    row = {
        "task": cell.task, "group": suite.group_of(cell.task), "method": cell.method, "seed": cell.seed,
        "top1": results["test"]["top1"], "gflops": results["gflops"], "gflops_ratio": results["gflops"] / dense,
        "trainable_params": results["params"]["trainable"], "train_seconds": round(spent, 1),
        "grid_seconds": round(seconds, 1), "chosen": chosen, "grid": points, "epochs": final.train.epochs,
    }
    write_text(cell.result_file(out), json.dumps(row, indent=2))
    return row
