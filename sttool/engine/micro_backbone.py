"""Rebuild the micro backbone: its stem as a small CNN, then the whole ViT, then its [CLS] attention, on
freshly rendered images.

Stage 1 (``recipes/micro_backbone_stem.yaml``) trains the convolutional stem alone as a CNN
classifier (``StemClassifier``): a CNN learns the shapes from far fewer images than a ViT. Its
BatchNorms are folded into the convolutions and the stem is written, with freshly initialised blocks,
as a whole backbone file. Stage 2 (``recipes/micro_backbone.yaml``) trains every parameter of the
ViT from there with token labels. Stage 3 (``recipes/micro_backbone_attention.yaml``) goes on with a
target for the [CLS] attention of the later blocks (the object's pixels), which token selection ranks
by. Every stage streams its training images (``data.stream``), so nothing is memorised, and each
resumes from its last checkpoint after an interruption.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from sttool.config.schema import to_dict
from sttool.engine.distributed import DistContext
from sttool.engine.evaluate import evaluate
from sttool.engine.loop import EpochRunner, StepCounter, StopRequest
from sttool.engine.objectives import soft_cross_entropy
from sttool.engine.sampling import eval_loader, train_loader
from sttool.engine.trainer import build_datasets, create_optimizer, finetune, resolve_classes
from sttool.errors import SttoolError
from sttool.models.micro import MICRO_NAME, MICRO_WEIGHTS, StemClassifier, export_backbone
from sttool.progress import SILENT, Progress
from sttool.runs.checkpoint import load_trained_state, read_checkpoint, restore_optimizer, save_checkpoint
from sttool.runs.folder import RunDir
from sttool.runs.load import create_model, input_spec, load_run, probe_model
from sttool.runs.recipe import Recipe, load_recipe
from sttool.runtime import resolve_device, seeded

MAX_BYTES = 10 * 1024 * 1024
STAGE_EXPORT = "backbone.safetensors"  # each stage's backbone, in its run folder, for the next stage
PRETRAIN_COUNTS = (0, 100, 100)  # images per class written for train, val, test: training streams its own


def shipped_recipe(name: str) -> Path:
    """A recipe that ships inside the package (``sttool/recipes``), so the build runs from any folder."""
    return Path(str(resources.files("sttool") / "recipes" / name))


STEM_RECIPE = "micro_backbone_stem.yaml"
VIT_RECIPE = "micro_backbone.yaml"
ATTENTION_RECIPE = "micro_backbone_attention.yaml"


def _check(recipe: Recipe, path: Path) -> None:
    if recipe.model.backbone.split(".")[0] != MICRO_NAME or recipe.model.method != "full":
        raise SttoolError(f"{path}: expected a full training of {MICRO_NAME}, got {recipe.model.backbone} / {recipe.model.method}")
    if not recipe.data.stream:
        raise SttoolError(f"{path}: data.stream must give the images per epoch; the micro backbone trains on rendered images")


def train_stem(recipe: Recipe, resume: bool = False, overwrite: bool = False, progress: Progress = SILENT) -> dict[str, Any]:
    """Stage 1: train the stem as a CNN on streamed images, then write the backbone it starts (folded stem,
    blocks initialised from ``train.seed``) to ``RUN_DIR/backbone.safetensors``."""
    context = DistContext()
    device = resolve_device(recipe.train.device)
    spec = input_spec(probe_model(recipe))
    datasets = build_datasets(recipe, spec)
    recipe = resolve_classes(recipe, datasets)
    with seeded(recipe.train.seed):
        classifier = StemClassifier(recipe.num_classes).to(device)
    run_dir = RunDir(recipe.run_dir)
    resolved = to_dict(recipe)
    run_dir.prepare(resolved, resume, overwrite)
    optimizer = create_optimizer(classifier, recipe)
    counter = StepCounter()
    if resume:
        state, optim_state, meta = read_checkpoint(run_dir.last)
        load_trained_state(classifier, state, str(run_dir.last))
        restore_optimizer(optimizer, optim_state, meta, device)
        counter = StepCounter(meta["epoch"], meta["step"], meta["global_step"])
    loader, sampler = train_loader(datasets["train"], recipe, context, spec, device)
    runner = EpochRunner(recipe, classifier, lambda logits, targets, labels, masks: soft_cross_entropy(logits, targets),
                         optimizer, loader, sampler, device, context, recipe.num_classes)
    val_loader = eval_loader(datasets["val"], recipe, context)

    def save() -> None:
        meta = {"recipe": resolved, "kind": "last", "epoch": counter.epoch, "step": counter.step, "global_step": counter.global_step}
        save_checkpoint(run_dir.last, classifier, meta, optimizer)

    val: dict[str, Any] = {}
    with StopRequest() as stop:
        while counter.epoch < recipe.train.epochs:
            result = runner.run_epoch(counter, progress, stop)
            if result.stopped:
                save()
                progress.note(f"stopped by {stop.signal_name or 'a stop request'}: resumable checkpoint {run_dir.last}")
                return {"status": "interrupted"}
            val = evaluate(classifier, val_loader, device, recipe.train.precision, recipe.num_classes, context, 3)
            progress.note(f"stem epoch {counter.epoch + 1}: train loss {result.loss:.4f}, val top-1 {val['top1']:.2f}%")
            run_dir.log({"event": "train", "epoch": counter.epoch + 1, "loss": result.loss, "val": val})
            counter.epoch, counter.step = counter.epoch + 1, 0
            save()
    if not val:  # a finished run resumed: measure again
        val = evaluate(classifier, val_loader, device, recipe.train.precision, recipe.num_classes, context, 3)
    with seeded(recipe.train.seed):
        backbone = create_model(replace(recipe, model=replace(recipe.model, weights="none")), torch.device("cpu"))
    classifier.to("cpu").eval().fold_into(backbone)
    export_backbone(backbone, run_dir.path / STAGE_EXPORT)
    results = {"name": recipe.name, "val": val}
    run_dir.write_results(results)
    return results


def build_micro_backbone(stem_recipe: Path | None = None, recipe: Path | None = None, out: Path = MICRO_WEIGHTS,
                         overrides: list[str] | None = None, overwrite: bool = False, progress: Progress = SILENT,
                         images_per_class: tuple[int, int, int] = PRETRAIN_COUNTS,
                         attention_recipe: Path | None = None) -> dict[str, Any]:
    """The three stages in order and the export of the last one's backbone to ``out``.

    A stage whose run folder already holds a checkpoint is resumed (a finished one is only evaluated
    again), so an interrupted build continues where it stopped; ``overwrite`` trains both again.
    ``overrides`` (``key=value``) apply to both recipes, e.g. ``train.device=cuda``; ``images_per_class``
    sizes the fixed val and test files written when the pre-training set is missing.
    """
    from sttool.data import SyntheticOptions, make_synthetic

    stem_path, vit_path = stem_recipe or shipped_recipe(STEM_RECIPE), recipe or shipped_recipe(VIT_RECIPE)
    attention_path = attention_recipe or shipped_recipe(ATTENTION_RECIPE)
    stem = load_recipe(stem_path, overrides)
    _check(stem, stem_path)
    if not (Path(stem.data.root) / "images" / "info.json").is_file():
        make_synthetic(SyntheticOptions(out=stem.data.root, task="pretrain", images_per_class=images_per_class, videos=False))
    stem_results = train_stem(stem, resume=not overwrite and RunDir(stem.run_dir).last.is_file(), overwrite=overwrite, progress=progress)
    if stem_results.get("status") == "interrupted":
        raise SttoolError("pre-training was interrupted in the stem stage; run the same 'sttool prepare micro-backbone' "
                          "command again to continue where it stopped")
    previous = stem.run_dir / STAGE_EXPORT
    results: dict[str, Any] = {}
    for stage, path in (("ViT", vit_path), ("attention", attention_path)):
        recipe_ = load_recipe(path, [*(overrides or []), f"model.weights={previous}"])
        _check(recipe_, path)
        results = finetune(recipe_, resume=not overwrite and RunDir(recipe_.run_dir).last.is_file(), progress=progress,
                           overwrite=overwrite)
        if results.get("status") == "interrupted":
            raise SttoolError(f"pre-training was interrupted in the {stage} stage; run the same 'sttool prepare "
                              "micro-backbone' command again to continue where it stopped")
        model, _, checkpoint = load_run(recipe_.run_dir)
        previous = recipe_.run_dir / STAGE_EXPORT
        export_backbone(model, previous)
        progress.note(f"{stage} stage: test top-1 {results['test']['top1']:.2f}%")
    size = previous.stat().st_size
    if size > MAX_BYTES:
        raise SttoolError(f"the exported backbone {previous} has {size} bytes, more than the 10 MB the repository allows")
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(previous, out)
    return {"weights": str(out), "bytes": size, "stem_val_top1": stem_results["val"]["top1"],
            "checkpoint": str(checkpoint), "best": results["best"], "test_top1": results["test"]["top1"]}
