"""Rebuild the micro backbone: generate its pre-training data, run its recipe, export the weights."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console

from sttool.config.recipe import load_recipe
from sttool.engine.evaluate_run import load_checkpoint_model
from sttool.engine.trainer import finetune
from sttool.errors import SttoolError
from sttool.models.micro import MICRO_NAME, MICRO_WEIGHTS, export_backbone

MAX_BYTES = 10 * 1024 * 1024


def build_micro_backbone(recipe_path: Path, out: Path = MICRO_WEIGHTS, images_per_class: tuple[int, int, int] = (1000, 100, 100),
                         overrides: list[str] | None = None, console: Console | None = None) -> dict[str, Any]:
    """Pre-train ``recipe_path`` (from scratch, on the synthetic pretrain task) and export its backbone."""
    from sttool.data import SyntheticOptions, make_synthetic

    recipe = load_recipe(recipe_path, overrides)
    if recipe.model.backbone.split(".")[0] != MICRO_NAME or recipe.model.method != "full":
        raise SttoolError(f"{recipe_path}: expected a full training of {MICRO_NAME}, got {recipe.model.backbone} / {recipe.model.method}")
    if not (Path(recipe.data.root) / "images" / "info.json").is_file():
        make_synthetic(SyntheticOptions(out=recipe.data.root, task="pretrain", images_per_class=images_per_class, videos=False))
    results = finetune(recipe, console=console)
    if results.get("status") == "interrupted":
        raise SttoolError(f"pre-training was interrupted; continue with: sttool finetune {recipe_path} --resume")
    model, _, checkpoint = load_checkpoint_model(recipe.run_dir)
    size = export_backbone(model, out)
    if size > MAX_BYTES:
        raise SttoolError(f"the exported backbone {out} has {size} bytes, more than the 10 MB the repository allows")
    return {"weights": str(out), "bytes": size, "checkpoint": str(checkpoint), "test_top1": results["test"]["top1"],
            "best": results["best"]}
