"""``finetune``: a whole run, from recipe to the test metrics of the checkpoint chosen on validation.

Honest protocol: the best epoch is chosen on the validation split only; the test split is evaluated
once, at the end, on the chosen checkpoint. Checkpoints hold only what was trained and are written
atomically; ``resume`` continues exactly where the last checkpoint stopped (mid-epoch included).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch
from rich.console import Console
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Dataset

from sttool.config.recipe import Recipe, bind_recipe
from sttool.config.schema import to_dict
from sttool.engine import setup
from sttool.engine.checkpoint import load_trained_state, read_checkpoint, restore_optimizer, save_checkpoint
from sttool.engine.distributed import DistContext, init_distributed, resolve_device, shutdown
from sttool.engine.evaluate import evaluate
from sttool.engine.exits_run import calibrate_run, write_exits
from sttool.engine.faults import StopRequest
from sttool.engine.loop import EpochRunner, StepCounter
from sttool.engine.plots import plot_run
from sttool.engine.progress import TrainingProgress
from sttool.engine.run_dir import RunDir
from sttool.engine.sync_norm import synchronise_batch_norms
from sttool.errors import SttoolError
from sttool.flops import count_flops
from sttool.models.build import build_model, count_parameters

# Settings a resumed run may change; any other difference from the saved recipe is refused.
RESUMABLE_CHANGES = {("train", "log_every"), ("data", "num_workers"), ("train", "eval_batch_size")}


def finetune(recipe: Recipe, resume: bool = False, datasets: dict[str, Dataset | None] | None = None,
             console: Console | None = None, overwrite: bool = False) -> dict[str, Any]:
    """Train ``recipe`` (resuming its run folder, or replacing the run in it with ``overwrite``) and
    return the final results."""
    if resume and overwrite:
        raise SttoolError("--resume continues the run in the folder and --overwrite replaces it: give one of them")
    context = init_distributed("cuda" if recipe.train.device != "cpu" and torch.cuda.is_available() else "cpu")
    try:
        device = resolve_device(recipe.train.device, context)
        return Run(recipe, context, device, datasets, console).execute(resume, overwrite)
    finally:
        shutdown(context)


class Run:
    """The state of one run: recipe, model, data, optimiser, run folder."""

    def __init__(self, recipe: Recipe, context: DistContext, device: torch.device,
                 datasets: dict[str, Dataset | None] | None, console: Console | None) -> None:
        self.context, self.device = context, device
        self.console = console or Console(stderr=True)
        torch.manual_seed(recipe.train.seed)
        with torch.device("meta"):
            probe = build_model(config=replace(recipe.model, weights=None, num_classes=recipe.model.num_classes or 1))
        self.spec = setup.input_spec(probe)
        self.datasets = datasets if datasets is not None else setup.build_datasets(recipe, self.spec)
        self.recipe = setup.resolve_classes(recipe, self.datasets)
        self.run_dir = RunDir(self.recipe.run_dir)
        self.model = setup.create_model(self.recipe, device)
        self.sample_ndim = 4 if self.recipe.model.num_frames else 3
        self.scaler_state: dict | None = None

    def execute(self, resume: bool, overwrite: bool = False) -> dict[str, Any]:
        recipe, context = self.recipe, self.context
        resolved = to_dict(recipe)
        if context.is_main:
            self.run_dir.prepare(resolved, resume, overwrite)
        context.barrier()
        optimizer = setup.create_optimizer(self.model, recipe)
        counter, best = StepCounter(), None
        if resume:
            counter, best = self._resume(optimizer, resolved)
        train_model, objective = setup.training_objective(self.model, recipe)
        if context.enabled:
            synchronise_batch_norms(self.model)
            train_model = DistributedDataParallel(train_model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        loader, sampler = setup.train_loader(self.datasets["train"], recipe, context, self.spec, self.device)
        runner = EpochRunner(recipe, train_model, objective, optimizer, loader, sampler, self.device, context,
                             recipe.model.num_classes)
        if self.scaler_state:
            runner.scaler.load_state_dict(self.scaler_state)
        val_loader = setup.eval_loader(self.datasets["val"], recipe, context) if self.datasets["val"] is not None else None
        with TrainingProgress(recipe.train.epochs, context.is_main, recipe.train.log_every, self.console) as progress, \
                StopRequest() as stop:
            while counter.epoch < recipe.train.epochs:
                result = runner.run_epoch(counter, progress, stop)
                if result.skipped:
                    self._report_skipped(result.skipped, counter.epoch, progress)
                if result.stopped:
                    return self._interrupted(optimizer, counter, best, runner, stop, progress)
                record = {"event": "train", "epoch": counter.epoch + 1, "loss": result.loss, "lr": optimizer.param_groups[0]["lr"],
                          "skipped": len(result.skipped)}
                if val_loader is not None and self._validation_due(counter.epoch):
                    val = evaluate(self.model, val_loader, self.device, recipe.train.precision, recipe.model.num_classes,
                                   context, self.sample_ndim)
                    record["val"] = val
                    progress.note(f"epoch {counter.epoch + 1}: train loss {result.loss:.4f}, val top-1 {val['top1']:.2f}%")
                    if best is None or val["top1"] > best["top1"]:
                        best = {"epoch": counter.epoch + 1, "top1": val["top1"]}
                        self._save_best(best)
                else:
                    progress.note(f"epoch {counter.epoch + 1}: train loss {result.loss:.4f}")
                if context.is_main:
                    self.run_dir.log(record)
                counter.epoch, counter.step = counter.epoch + 1, 0
                self._save_last(optimizer, counter, best, runner)
                if counter.epoch < recipe.train.epochs and runner.stop_agreed(stop):
                    return self._interrupted(optimizer, counter, best, runner, stop, progress)
        return self._finish(best)

    def _interrupted(self, optimizer, counter: StepCounter, best, runner: EpochRunner, stop: StopRequest,
                     progress: TrainingProgress) -> dict[str, Any]:
        self._save_last(optimizer, counter, best, runner)
        progress.note(f"stopped by {stop.signal_name or 'a stop request'}: resumable checkpoint {self.run_dir.last} "
                      f"(epoch {counter.epoch + 1}, step {counter.step}); continue with --resume")
        return {"status": "interrupted", "epoch": counter.epoch, "step": counter.step}

    def _validation_due(self, epoch: int) -> bool:
        return (epoch + 1) % self.recipe.train.eval_every == 0 or epoch + 1 == self.recipe.train.epochs

    def _metadata(self, **fields: Any) -> dict[str, Any]:
        return {"recipe": to_dict(self.recipe), **fields}

    def _save_best(self, best: dict[str, Any]) -> None:
        if self.context.is_main:
            save_checkpoint(self.run_dir.best, self.model, self._metadata(kind="best", **best))

    def _save_last(self, optimizer, counter: StepCounter, best, runner: EpochRunner) -> None:
        if self.context.is_main:
            meta = self._metadata(kind="last", epoch=counter.epoch, step=counter.step, global_step=counter.global_step,
                                  best=best, scaler=runner.scaler.state_dict())
            save_checkpoint(self.run_dir.last, self.model, meta, optimizer)
        self.context.barrier()

    def _resume(self, optimizer, resolved: dict[str, Any]) -> tuple[StepCounter, dict | None]:
        model_state, optim_state, meta = read_checkpoint(self.run_dir.last)
        changed = _differences(meta["recipe"], resolved)
        refused = [key for key in changed if tuple(key.split(".")[:2]) not in RESUMABLE_CHANGES]
        if refused:
            raise SttoolError(f"--resume: the recipe differs from the run's at {', '.join(refused[:3])}; "
                              f"resume with the same recipe (see {self.run_dir.path / 'recipe.yaml'})")
        load_trained_state(self.model, model_state, str(self.run_dir.last))
        restore_optimizer(optimizer, optim_state, meta, self.device)
        self.scaler_state = meta.get("scaler") or None
        return StepCounter(meta["epoch"], meta["step"], meta["global_step"]), meta.get("best")

    def _finish(self, best: dict[str, Any] | None) -> dict[str, Any]:
        """Evaluate the test split once, on the checkpoint chosen on validation (or the last one)."""
        recipe = self.recipe
        chosen = "last"
        if recipe.train.select == "val" and best is not None:
            model_state, _, _ = read_checkpoint(self.run_dir.best)
            load_trained_state(self.model, model_state, str(self.run_dir.best))
            chosen = f"best on val (epoch {best['epoch']})"
        results: dict[str, Any] = {
            "name": recipe.name, "checkpoint": chosen, "best": best,
            "gflops": count_flops(self.model).gflops, "params": count_parameters(self.model),
        }
        if self.datasets["test"] is not None:
            test_loader = setup.eval_loader(self.datasets["test"], recipe, self.context)
            results["test"] = evaluate(self.model, test_loader, self.device, recipe.train.precision,
                                       recipe.model.num_classes, self.context, self.sample_ndim)
        if self.context.is_main:
            if getattr(self.model, "exits", None) is not None:
                results["exits"] = self._calibrate_exits()
            if "test" in results:
                self.run_dir.log({"event": "test", "checkpoint": chosen, **results["test"]})
            self.run_dir.write_results(results)
            plot_run(self.run_dir, self.console)
        self.context.barrier()
        return results

    def _calibrate_exits(self) -> dict[str, Any]:
        """Thresholds from val, curve on test; the summary goes into the results, the rest into exits.json."""
        report = calibrate_run(self.model, self.recipe, self.datasets["val"], self.datasets["test"], self.device)
        path = write_exits(self.run_dir.path, report)
        point = report["operating_point"]
        self.console.print(f"exits calibrated on val: {path}" + (
            f"; operating point {point['val']['gflops']:.4f} GFLOPs (val top-1 {point['val']['top1']:.2f}%)" if point
            else "; no point meets the rule"), highlight=False)
        return {"per_exit_top1": report["per_exit_top1"], "operating_point": point,
                "no_exit_gflops": report["no_exit_gflops"], "rule": report["rule"]}

    def _report_skipped(self, skipped: list, epoch: int, progress: TrainingProgress) -> None:
        names = ", ".join(f"{s.path} ({s.reason})" for s in skipped[:5])
        more = f" and {len(skipped) - 5} more" if len(skipped) > 5 else ""
        progress.note(f"epoch {epoch + 1}: skipped {len(skipped)} bad samples: {names}{more}")


def _differences(saved: Any, current: Any, prefix: str = "") -> list[str]:
    """Dotted keys where two recipe mappings differ."""
    if isinstance(saved, dict) and isinstance(current, dict):
        keys = sorted(set(saved) | set(current))
        return [d for k in keys for d in _differences(saved.get(k), current.get(k), f"{prefix}{k}.")]
    return [] if saved == current else [prefix.rstrip(".")]


def load_run_recipe(data: dict[str, Any], source: str) -> Recipe:
    """A recipe saved in a run folder or checkpoint, validated again."""
    return bind_recipe(data, f"{source}:")
