"""What ``sttool profile`` profiles: a model configuration (defaults, a recipe, options) or a tuned run.

A configuration is profiled with random weights, built cheaply (nothing is downloaded); a run folder
or checkpoint is profiled as trained, through the checkpoint's own recipe.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from sttool.config.recipe import bind_recipe, read_recipe_data
from sttool.config.schema import bind, to_dict
from sttool.engine.checkpoint import read_checkpoint
from sttool.engine.evaluate_run import find_checkpoint, load_checkpoint_model
from sttool.errors import SttoolError
from sttool.models.build import build_model
from sttool.models.config import ModelConfig
from sttool.models.vit import SparseViT

CHECKPOINT_SUFFIX = ".safetensors"


@dataclass
class ProfileTarget:
    """A model configuration, and the tuned checkpoint and run folder when profiling a run."""

    config: ModelConfig
    checkpoint: Path | None = None
    run_dir: Path | None = None

    def build(self, device: torch.device) -> SparseViT:
        """The model to time: the tuned one from its checkpoint, or the configuration with random weights."""
        if self.checkpoint is not None:
            return load_checkpoint_model(self.checkpoint, device)[0]
        return build_random(self.config, device)

    def describe(self) -> dict[str, Any]:
        if self.checkpoint is None:
            return {"kind": "configuration", "weights": "random"}
        return {"kind": "run", "run_dir": str(self.run_dir), "checkpoint": str(self.checkpoint)}


def build_random(config: ModelConfig, device: torch.device) -> SparseViT:
    """``config``'s model with seeded random weights: timing and memory do not depend on the values."""
    torch.manual_seed(0)
    return build_model(config=replace(config, weights=None)).to(device)


def is_run(path: Path) -> bool:
    """A folder (a run) or a safetensors file (a checkpoint), as opposed to a recipe file."""
    return path.is_dir() or path.suffix == CHECKPOINT_SUFFIX


def run_target(path: Path) -> ProfileTarget:
    """A run folder or checkpoint: the checkpoint evaluate would use, and the recipe saved in it."""
    checkpoint = find_checkpoint(path)
    _, _, meta = read_checkpoint(checkpoint)
    recipe = bind_recipe(meta["recipe"], f"{checkpoint} (recipe):")
    run_dir = path if path.is_dir() else checkpoint.parent.parent
    return ProfileTarget(recipe.model, checkpoint, run_dir)


def resolve_target(path: Path | None, options: dict[str, Any]) -> ProfileTarget:
    """The target named by ``path`` (None: the paper's configuration), with ``options`` (ModelConfig
    fields, None = not given) applied to a configuration; a tuned run takes none of them."""
    given = sorted(name for name, value in options.items() if value is not None)
    if path is not None and is_run(path):
        if given:
            raise SttoolError(f"model options ({', '.join(given)}) change a configuration; {path} is a tuned run, "
                              "profiled as trained (give its recipe.yaml to profile variants)")
        return run_target(path)
    config = ModelConfig()
    if path is not None:
        if not path.is_file():
            raise SttoolError(f"{path}: no recipe file, run folder or checkpoint there")
        config = bind(ModelConfig, read_recipe_data(path).get("model"), f"{path}: model")
    merged = {**to_dict(config), **{name: options[name] for name in given}}
    return ProfileTarget(bind(ModelConfig, merged, "profile options"))
