"""Rebuild the micro backbone: generate its pre-training data, run its recipes in order, export the weights."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from rich.console import Console

from sttool.config.recipe import load_recipe
from sttool.engine.evaluate_run import load_checkpoint_model
from sttool.engine.run_dir import RunDir
from sttool.engine.trainer import finetune
from sttool.errors import SttoolError
from sttool.models.micro import MICRO_NAME, MICRO_WEIGHTS, export_backbone

MAX_BYTES = 10 * 1024 * 1024
STAGES = (Path("recipes/micro_backbone.yaml"), Path("recipes/micro_backbone_stage2.yaml"))
STAGE_EXPORT = "backbone.safetensors"  # each stage's backbone, in its run folder, for the next stage


def build_micro_backbone(recipes: list[Path] | tuple[Path, ...] = STAGES, out: Path = MICRO_WEIGHTS,
                         images_per_class: tuple[int, int, int] = (1000, 100, 100), overrides: list[str] | None = None,
                         overwrite: bool = False, console: Console | None = None) -> dict[str, Any]:
    """Pre-train the micro backbone through ``recipes`` in order and export the last stage's backbone to ``out``.

    The first recipe trains from its own ``model.weights`` (``none``: from scratch); each later one starts
    from the backbone the stage before it exported to ``RUN_DIR/backbone.safetensors``. A stage whose
    run folder already holds a checkpoint is resumed (a finished one is only evaluated again), so an
    interrupted build continues where it stopped; ``overwrite`` trains every stage again.
    """
    from sttool.data import SyntheticOptions, make_synthetic

    if not recipes:
        raise SttoolError("no pre-training recipe given")
    previous: Path | None = None
    stages = []
    for path in recipes:
        chained = [f"model.weights={previous}"] if previous is not None else []
        recipe = load_recipe(path, [*(overrides or []), *chained])
        if recipe.model.backbone.split(".")[0] != MICRO_NAME or recipe.model.method != "full":
            raise SttoolError(f"{path}: expected a full training of {MICRO_NAME}, got {recipe.model.backbone} / {recipe.model.method}")
        if not (Path(recipe.data.root) / "images" / "info.json").is_file():
            make_synthetic(SyntheticOptions(out=recipe.data.root, task="pretrain", images_per_class=images_per_class, videos=False))
        resume = not overwrite and RunDir(recipe.run_dir).last.is_file()
        results = finetune(recipe, resume=resume, console=console, overwrite=overwrite)
        if results.get("status") == "interrupted":
            raise SttoolError(f"pre-training was interrupted in {path}; run the same 'sttool prepare micro-backbone' "
                              "command again to continue where it stopped")
        model, _, checkpoint = load_checkpoint_model(recipe.run_dir)
        previous = recipe.run_dir / STAGE_EXPORT
        export_backbone(model, previous)
        stages.append({"recipe": str(path), "checkpoint": str(checkpoint), "test_top1": results["test"]["top1"], "best": results["best"]})
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(previous, out)
    size = out.stat().st_size
    if size > MAX_BYTES:
        raise SttoolError(f"the exported backbone {out} has {size} bytes, more than the 10 MB the repository allows")
    return {"weights": str(out), "bytes": size, "stages": stages, "test_top1": stages[-1]["test_top1"]}
