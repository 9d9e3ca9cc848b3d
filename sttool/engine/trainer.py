"""``finetune``: a whole run, from recipe to the test metrics of the checkpoint chosen on validation.

Honest protocol: the best epoch is chosen on the validation split only; the test split is evaluated
once, at the end, on the chosen checkpoint. Checkpoints hold only what was trained and are written
atomically; ``resume`` continues exactly where the last checkpoint stopped (mid-epoch included).

The pieces of a run come from the recipe here too: datasets, the training objective, the optimiser
(the model comes from ``runs.load.create_model``, the loaders from ``engine.sampling``).
"""

from __future__ import annotations

import json
import math
from contextlib import nullcontext
from dataclasses import replace
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from sttool.config.schema import to_dict
from sttool.engine.distributed import DistContext, init_distributed, shutdown, synchronise_batch_norms
from sttool.engine.evaluate import evaluate
from sttool.engine.exits import ExitsForward, MultiExitLoss, calibrate_run
from sttool.engine.loop import EpochResult, EpochRunner, NonFiniteLoss, Objective, StepCounter, StopRequest
from sttool.engine.objectives import TokenLabelForward, TokenLabelLoss, soft_cross_entropy
from sttool.engine.sampling import eval_loader, train_loader
from sttool.errors import SttoolError
from sttool.models.build import count_parameters
from sttool.models.vit import SparseViT
from sttool.profiling.flops import count_flops, gflops_report
from sttool.progress import SILENT, Progress
from sttool.runs.card import model_card
from sttool.runs.checkpoint import (
    first_non_finite,
    load_trained_state,
    read_checkpoint,
    restore_optimizer,
    save_checkpoint,
    trained_state,
    write_adapter_folder,
)
from sttool.runs.folder import ADAPTER_DIR, RunDir, Trackers
from sttool.runs.load import create_model, input_spec, probe_model
from sttool.runs.recipe import Recipe, bind_recipe
from sttool.runtime import resolve_device

SPLITS = ("train", "val", "test")


def build_datasets(recipe: Recipe, spec: Any) -> dict[str, Any]:
    """Train (with augmentation), val and test datasets; a split the data lacks is None."""
    from sttool.data import build_dataset, has_split

    datasets: dict[str, Any] = {}
    for split in SPLITS:
        if split == "train" and recipe.data.stream:
            from sttool.data.synthetic.stream import StreamedTask

            datasets[split] = StreamedTask(recipe.data.task or "shapes", recipe.data.stream)  # task: checked with stream
        elif split == "train" or has_split(recipe.data, split):
            datasets[split] = build_dataset(recipe.data, split, spec, train=split == "train")
        else:
            datasets[split] = None
    if recipe.train.select == "val" and datasets["val"] is None:
        raise SttoolError(
            "train.select: val needs a validation split, and this dataset has none; set data.val_from_train=0.1 "
            "to hold out part of train, or train.select=last (never select on test)"
        )
    return datasets


def resolve_classes(recipe: Recipe, datasets: dict[str, Any]) -> Recipe:
    """Take the class count from the data, or check the recipe's against it."""
    found = datasets["train"].num_classes
    for split, dataset in datasets.items():
        if dataset is not None and dataset.num_classes != found:
            raise SttoolError(f"data: the {split} split has {dataset.num_classes} classes but train has {found} (root {recipe.data.root})")
    if recipe.model.num_classes is None:
        return replace(recipe, model=replace(recipe.model, num_classes=found))
    if recipe.model.num_classes != found:
        raise SttoolError(
            f"model.num_classes is {recipe.model.num_classes} but the data under {recipe.data.root} has {found} classes; "
            f"set model.num_classes={found} or leave it out"
        )
    return recipe


def training_objective(model: SparseViT, recipe: Recipe) -> tuple[nn.Module, Objective]:
    """The module the training loop calls (DDP wraps it) and the loss of its output given the soft
    targets, the labels and the foreground masks (when the data gives them)."""
    if recipe.train.token_labels > 0:
        train = recipe.train
        blocks = range(train.attention_from - 1, len(model.blocks)) if train.attention_labels > 0 else range(0)
        return (TokenLabelForward(model, list(blocks)),
                TokenLabelLoss(train.token_labels, model.patch_embed.patch_size[0], recipe.num_classes, train.attention_labels))
    if getattr(model, "exits", None) is not None:
        exit_loss = MultiExitLoss(recipe.exits, len(model.exits.blocks) + 1)
        return ExitsForward(model), lambda outputs, targets, labels, masks: exit_loss(outputs, targets)
    return model, lambda logits, targets, labels, masks: soft_cross_entropy(logits, targets)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on trained matrices only: not on biases, norms, or position and class embeddings."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        skip = param.ndim <= 1 or name.endswith(("pos_embed", "cls_token", "time_embed", "reg_token"))
        (no_decay if skip else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def create_optimizer(model: nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    groups = [g for g in param_groups(model, recipe.optim.weight_decay) if g["params"]]
    if not groups:
        raise SttoolError(f"model.method {recipe.model.method} leaves nothing to train")
    return torch.optim.AdamW(groups, lr=recipe.optim.peak_lr(recipe.train.batch_size), betas=(recipe.optim.betas[0], recipe.optim.betas[1]))


# Settings a resumed run may change; any other difference from the saved recipe is refused.
RESUMABLE_CHANGES = {("train", "log_every"), ("data", "num_workers"), ("train", "eval_batch_size")}


def finetune(recipe: Recipe, resume: bool = False, datasets: dict[str, Any] | None = None,
             progress: Progress = SILENT, overwrite: bool = False) -> dict[str, Any]:
    """Train ``recipe`` (resuming its run folder, or replacing the run in it with ``overwrite``) and
    return the final results; ``progress`` renders epochs and notes (on the main process only)."""
    if resume and overwrite:
        raise SttoolError("--resume continues the run in the folder and --overwrite replaces it: give one of them")
    context = init_distributed("cuda" if recipe.train.device != "cpu" and torch.cuda.is_available() else "cpu")
    try:
        device = resolve_device(recipe.train.device, context.local_rank)
        return Run(recipe, context, device, datasets, progress if context.is_main else SILENT).execute(resume, overwrite)
    finally:
        shutdown(context)


class Run:
    """The state of one run: recipe, model, data, optimiser, run folder."""

    def __init__(self, recipe: Recipe, context: DistContext, device: torch.device,
                 datasets: dict[str, Any] | None, progress: Progress) -> None:
        self.context, self.device, self.progress = context, device, progress
        self.spec = input_spec(probe_model(recipe))
        self.datasets = datasets if datasets is not None else build_datasets(recipe, self.spec)
        self.recipe = resolve_classes(recipe, self.datasets)
        self.run_dir = RunDir(self.recipe.run_dir)
        self.model = create_model(self.recipe, device)
        self.sample_ndim = 4 if self.recipe.model.num_frames else 3
        self.scaler_state: dict | None = None

    def execute(self, resume: bool, overwrite: bool = False) -> dict[str, Any]:
        recipe, context = self.recipe, self.context
        with self.run_dir.lock() if context.is_main else nullcontext():
            if context.is_main and not overwrite:
                self.run_dir.check_new(resume)
            optimizer = create_optimizer(self.model, recipe)
            counter, best, carried = StepCounter(), None, None
            if resume:  # refused before anything in the folder changes
                counter, best, carried = self._resume(optimizer, to_dict(recipe))
            if context.is_main:
                self.run_dir.check_free_space(self._checkpoint_bytes())
                self.run_dir.prepare(to_dict(recipe), resume, overwrite)
                if recipe.train.loggers:
                    self.run_dir.trackers = Trackers(recipe.train.loggers, self.run_dir, to_dict(recipe))
                if resume:
                    self.run_dir.log({"event": "resume", "epoch": counter.epoch + 1, "step": counter.step})
            context.barrier()
            try:
                return self._train(optimizer, counter, best, carried)
            finally:
                if self.run_dir.trackers is not None:
                    self.run_dir.trackers.close()
                    self.run_dir.trackers = None

    def _train(self, optimizer, counter: StepCounter, best: dict | None, carried: tuple[float, int] | None) -> dict[str, Any]:
        recipe, context = self.recipe, self.context
        train_model: Any
        train_model, objective = training_objective(self.model, recipe)
        eval_model: Any = self.model
        if context.enabled:
            synchronise_batch_norms(self.model)
            train_model = DistributedDataParallel(train_model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        if recipe.train.compile:  # after DDP, as PyTorch recommends; the model has one graph at fixed keep rates
            train_model, eval_model = torch.compile(train_model), torch.compile(self.model)
        loader, sampler = train_loader(self.datasets["train"], recipe, context, self.spec, self.device)
        runner = EpochRunner(recipe, train_model, objective, optimizer, loader, sampler, self.device, context,
                             recipe.num_classes)
        if self.scaler_state:
            runner.scaler.load_state_dict(self.scaler_state)
        val_loader = eval_loader(self.datasets["val"], recipe, context) if self.datasets["val"] is not None else None
        progress = self.progress
        self._report_rejected(progress)
        with StopRequest() as stop:
            while counter.epoch < recipe.train.epochs:
                result = runner.run_epoch(counter, progress, stop, carried)
                carried = None
                if result.skipped:
                    self._report_skipped(result.skipped, counter.epoch, progress)
                if result.stopped:
                    return self._interrupted(optimizer, counter, best, runner, stop, progress, result)
                record = {"event": "train", "epoch": counter.epoch + 1, "loss": result.loss, "lr": optimizer.param_groups[0]["lr"],
                          "skipped": len(result.skipped), "skipped_samples": [f"{s.path} ({s.reason})" for s in result.skipped]}
                val = None
                if val_loader is not None and self._validation_due(counter.epoch):
                    val = evaluate(eval_model, val_loader, self.device, recipe.train.precision, recipe.num_classes,
                                   context, self.sample_ndim)
                    record["val"] = val
                    progress.note(f"epoch {counter.epoch + 1}: train loss {result.loss:.4f}, val top-1 {val['top1']:.2f}%")
                else:
                    progress.note(f"epoch {counter.epoch + 1}: train loss {result.loss:.4f}")
                self._refuse_diverged(counter.epoch, val)
                if val is not None and (best is None or val["top1"] > best["top1"]):
                    best = {"epoch": counter.epoch + 1, "top1": val["top1"]}
                    self._save_best(best)
                if context.is_main:
                    self.run_dir.log(record)
                counter.epoch, counter.step = counter.epoch + 1, 0
                self._save_last(optimizer, counter, best, runner)
                if counter.epoch < recipe.train.epochs and runner.stop_agreed(stop):
                    return self._interrupted(optimizer, counter, best, runner, stop, progress)
        return self._finish(best)

    def _checkpoint_bytes(self) -> int:
        """About what best and last take: the trained tensors, and last holds AdamW's two moments too (x4 + margin)."""
        trained = sum(t.numel() * t.element_size() for t in trained_state(self.model).values())
        return 4 * trained + 10_000_000

    def _refuse_diverged(self, epoch: int, val: dict[str, Any] | None) -> None:
        """Stop, writing no checkpoint, when the weights or the validation loss are no longer finite: the
        last checkpoint on disk stays the last good one."""
        bad = first_non_finite(trained_state(self.model))
        what = f"'{bad}' holds NaN or infinite values" if bad else None
        if what is None and val is not None and not math.isfinite(val["loss"]):
            what = f"the validation loss is {val['loss']}"
        if what is None:
            return
        last = self.run_dir.last
        kept = "none was written yet"
        if last.is_file():
            kept = f"{last} (after epoch {read_checkpoint(last)[2]['epoch']})"
        raise NonFiniteLoss(f"the model diverged in epoch {epoch + 1}: {what}; stopped without writing a checkpoint, the last "
                            f"good one is {kept}; lower optim.lr or set optim.clip_grad")

    def _interrupted(self, optimizer, counter: StepCounter, best, runner: EpochRunner, stop: StopRequest,
                     progress: Progress, result: EpochResult | None = None) -> dict[str, Any]:
        self._refuse_diverged(counter.epoch, None)
        epoch_loss = None if result is None else {"sum": result.loss_sum, "count": result.count}
        self._save_last(optimizer, counter, best, runner, epoch_loss)
        progress.note(f"stopped by {stop.signal_name or 'a stop request'}: resumable checkpoint {self.run_dir.last} "
                      f"(epoch {counter.epoch + 1}, step {counter.step}); continue with --resume")
        return {"status": "interrupted", "epoch": counter.epoch, "step": counter.step}

    def _validation_due(self, epoch: int) -> bool:
        return (epoch + 1) % self.recipe.train.eval_every == 0 or epoch + 1 == self.recipe.train.epochs

    def _metadata(self, **fields: Any) -> dict[str, Any]:
        names = getattr(self.datasets["train"], "class_names", None)
        return {"recipe": to_dict(self.recipe), "class_names": list(names) if names is not None else None, **fields}

    def _save_best(self, best: dict[str, Any]) -> None:
        if self.context.is_main:
            save_checkpoint(self.run_dir.best, self.model, self._metadata(kind="best", **best))

    def _save_last(self, optimizer, counter: StepCounter, best, runner: EpochRunner,
                   epoch_loss: dict[str, float] | None = None) -> None:
        if self.context.is_main:
            meta = self._metadata(kind="last", epoch=counter.epoch, step=counter.step, global_step=counter.global_step,
                                  best=best, scaler=runner.scaler.state_dict(), epoch_loss=epoch_loss)
            save_checkpoint(self.run_dir.last, self.model, meta, optimizer)
        self.context.barrier()

    def _resume(self, optimizer, resolved: dict[str, Any]) -> tuple[StepCounter, dict | None, tuple[float, int] | None]:
        model_state, optim_state, meta = read_checkpoint(self.run_dir.last)
        changed = _differences(_with_defaults(meta["recipe"]), resolved)
        refused = [key for key in changed if tuple(key.split(".")[:2]) not in RESUMABLE_CHANGES]
        if refused:
            raise SttoolError(f"--resume: the recipe differs from the run's at {', '.join(refused[:3])}; "
                              f"resume with the same recipe (see {self.run_dir.path / 'recipe.yaml'})")
        load_trained_state(self.model, model_state, str(self.run_dir.last))
        restore_optimizer(optimizer, optim_state, meta, self.device)
        self.scaler_state = meta.get("scaler") or None
        loss = meta.get("epoch_loss")  # the interrupted epoch's loss so far, so its mean covers every step
        carried = (float(loss["sum"]), int(loss["count"])) if loss else None
        return StepCounter(meta["epoch"], meta["step"], meta["global_step"]), meta.get("best"), carried

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
            test_loader = eval_loader(self.datasets["test"], recipe, self.context)
            results["test"] = evaluate(self.model, test_loader, self.device, recipe.train.precision,
                                       recipe.num_classes, self.context, self.sample_ndim)
        if self.context.is_main:
            if getattr(self.model, "exits", None) is not None:
                results["exits"] = self._calibrate_exits()
            if "test" in results:
                self.run_dir.log({"event": "test", "checkpoint": chosen, **results["test"]})
            self.run_dir.write_results(results)
            self._write_adapter(results)
        self.context.barrier()
        return results

    def _write_adapter(self, results: dict[str, Any]) -> None:
        """``RUN/adapter/``: the chosen checkpoint's tensors, its config and a model card, ready for the Hub."""
        out = self.run_dir.path / ADAPTER_DIR
        dense = gflops_report(self.recipe.model)["dense_gflops"]
        write_adapter_folder(out, self.model, self._metadata(kind="adapter", results=results),
                             model_card(self.recipe, results, self._metadata()["class_names"] or [], dense))
        exits = self.run_dir.read_exits()
        if exits is not None:
            (out / "exits.json").write_text(json.dumps(exits, indent=2))

    def _calibrate_exits(self) -> dict[str, Any]:
        """Thresholds from val, curve on test; the summary goes into the results, the rest into exits.json."""
        report = calibrate_run(self.model, self.recipe, self.datasets["val"], self.datasets["test"], self.device)
        path = self.run_dir.write_exits(report)
        point = report["operating_point"]
        self.progress.note(f"exits calibrated on val: {path}" + (
            f"; operating point {point['val']['gflops']:.4f} GFLOPs (val top-1 {point['val']['top1']:.2f}%)" if point
            else "; no point meets the rule"))
        return {"per_exit_top1": report["per_exit_top1"], "operating_point": point,
                "no_exit_gflops": report["no_exit_gflops"], "rule": report["rule"]}

    def _report_rejected(self, progress: Progress) -> None:
        """List lines left out when the data was read (labels out of range under ``skip``): counted and named."""
        for split, dataset in self.datasets.items():
            rejected = getattr(dataset, "rejected", None) or []
            if rejected and self.context.is_main:
                names = ", ".join(f"{r.path} ({r.reason})" for r in rejected[:5])
                more = f" and {len(rejected) - 5} more" if len(rejected) > 5 else ""
                progress.note(f"data: {len(rejected)} {split} samples left out: {names}{more}")
                self.run_dir.log({"event": "rejected", "split": split, "count": len(rejected),
                                  "samples": [f"{r.path} ({r.reason})" for r in rejected]})

    def _report_skipped(self, skipped: list, epoch: int, progress: Progress) -> None:
        names = ", ".join(f"{s.path} ({s.reason})" for s in skipped[:5])
        more = f" and {len(skipped) - 5} more" if len(skipped) > 5 else ""
        progress.note(f"epoch {epoch + 1}: skipped {len(skipped)} bad samples: {names}{more}")


def _with_defaults(saved: dict[str, Any]) -> dict[str, Any]:
    """A run's saved recipe read by this version's schema, so keys added since (at their defaults) are no
    difference; one this version cannot read stays as saved, and every key that differs is named."""
    try:
        return to_dict(bind_recipe(saved, "the run's recipe"))
    except SttoolError:
        return saved


def _differences(saved: Any, current: Any, prefix: str = "") -> list[str]:
    """Dotted keys where two recipe mappings differ."""
    if isinstance(saved, dict) and isinstance(current, dict):
        keys = sorted(set(saved) | set(current))
        return [d for k in keys for d in _differences(saved.get(k), current.get(k), f"{prefix}{k}.")]
    return [] if saved == current else [prefix.rstrip(".")]
