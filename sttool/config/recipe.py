"""Recipes: YAML files with a typed, validated schema, ``extends`` inheritance and overrides.

A recipe has sections ``model`` (ModelConfig), ``data`` (DataConfig), ``optim``, ``train`` and
``exits`` (ExitsConfig); ``extends: base.yaml`` (relative to the file) merges a base recipe under it, section by
section, so the 19 VTAB-1K tasks share one base. Overrides (``optim.lr=1e-3`` or ``~key``) apply last.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from sttool.config.exits import ExitsConfig
from sttool.config.schema import apply_overrides, bind, join, load_yaml
from sttool.errors import SttoolError
from sttool.models.config import ModelConfig


@dataclass
class OptimConfig:
    """AdamW over the trained parameters, per-iteration linear warm-up then cosine decay."""

    lr: float | None = None  # absolute learning rate; None: blr * batch_size / 256 (MAE convention)
    blr: float = 1e-3
    weight_decay: float = 0.01  # not applied to biases, norms, and position or class embeddings
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    warmup_epochs: float = 0.0
    min_lr: float = 0.0
    clip_grad: float | None = None  # max global gradient norm

    def check(self, where: str) -> None:
        if self.lr is not None and self.lr <= 0 or self.blr <= 0:
            raise SttoolError(f"{where}: the learning rate must be positive (lr={self.lr}, blr={self.blr})")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise SttoolError(f"{where}.betas: {self.betas} must be two numbers in [0, 1)")
        if self.warmup_epochs < 0 or self.weight_decay < 0 or self.min_lr < 0:
            raise SttoolError(f"{where}: warmup_epochs, weight_decay and min_lr must be >= 0")
        if self.clip_grad is not None and self.clip_grad <= 0:
            raise SttoolError(f"{where}.clip_grad: {self.clip_grad} must be positive (or null for none)")

    def peak_lr(self, batch_size: int) -> float:
        return self.lr if self.lr is not None else self.blr * batch_size / 256


@dataclass
class TrainConfig:
    """The training loop. ``batch_size`` is global (per optimiser step), whatever the process count."""

    epochs: int = 100
    batch_size: int = 128
    eval_batch_size: int | None = None  # None: batch_size
    accum_steps: int = 1
    label_smoothing: float = 0.1
    mixup: float = 0.0  # mixup alpha (0: off)
    cutmix: float = 0.0  # cutmix alpha (0: off)
    mixup_prob: float = 1.0
    mixup_switch_prob: float = 0.5
    precision: Literal["fp32", "bf16", "fp16"] = "bf16"  # mixed precision on CUDA; CPU runs fp32
    device: Literal["auto", "cpu", "cuda"] = "auto"
    seed: int = 0
    select: Literal["val", "last"] = "val"  # the checkpoint evaluated on test: best on val, or the last
    eval_every: int = 1  # epochs between validations
    log_every: float = 10.0  # seconds between plain log lines when output is not a terminal
    max_steps_per_epoch: int | None = None  # cap optimiser steps per epoch (quick runs, tests)
    channels_last: bool = False
    token_labels: float = 0.0  # weight of token labelling (needs data.masks; pre-training from scratch)

    def check(self, where: str) -> None:
        for name in ("epochs", "batch_size", "accum_steps", "eval_every"):
            if getattr(self, name) < 1:
                raise SttoolError(f"{where}.{name}: {getattr(self, name)} must be at least 1")
        if self.batch_size % self.accum_steps:
            raise SttoolError(f"{where}.batch_size: {self.batch_size} is not divisible by accum_steps {self.accum_steps}")
        if not 0 <= self.label_smoothing < 1:
            raise SttoolError(f"{where}.label_smoothing: {self.label_smoothing} is outside [0, 1)")
        if self.mixup < 0 or self.cutmix < 0:
            raise SttoolError(f"{where}: mixup and cutmix alphas must be >= 0")
        if self.max_steps_per_epoch is not None and self.max_steps_per_epoch < 1:
            raise SttoolError(f"{where}.max_steps_per_epoch: must be at least 1 (or null)")
        if self.token_labels < 0:
            raise SttoolError(f"{where}.token_labels: {self.token_labels} must be >= 0")
        if self.token_labels > 0 and (self.mixup > 0 or self.cutmix > 0):
            raise SttoolError(f"{where}.token_labels: mixed images have no per-patch labels; set mixup and cutmix to 0")


def _data_config_type() -> Any:
    from sttool.data import DataConfig

    return DataConfig


@dataclass
class Recipe:
    """Everything a run needs. ``output_dir`` may use ``{name}``."""

    name: str = "run"
    output_dir: str = "runs/{name}"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: Any = None  # DataConfig (bound lazily so that the data package loads only when needed)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    exits: ExitsConfig = field(default_factory=ExitsConfig)

    @property
    def run_dir(self) -> Path:
        return Path(self.output_dir.format(name=self.name))


def read_recipe_data(path: str | Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The recipe's mapping with its ``extends`` chain merged in (later files win, per key)."""
    path = Path(path)
    if path.resolve() in seen:
        raise SttoolError(f"{path}: 'extends' forms a cycle through {', '.join(map(str, seen))}")
    data = load_yaml(str(path))
    base_name = data.pop("extends", None)
    if base_name is None:
        return data
    if not isinstance(base_name, str):
        raise SttoolError(f"{path}: 'extends' must be a file name, got {base_name!r}")
    base_path = path.parent / base_name
    if not base_path.is_file():
        raise SttoolError(f"{path}: extends '{base_name}', which does not exist at {base_path}")
    return merge(read_recipe_data(base_path, (*seen, path.resolve())), data)


def merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Deep merge of mappings: ``update`` wins; nested sections merge key by key."""
    merged = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def bind_recipe(data: dict[str, Any], where: str) -> Recipe:
    """Validate a recipe mapping: unknown keys name the closest valid key; numbers are typed."""
    data = dict(data)
    data_section = data.pop("data", None)
    recipe = bind(Recipe, data, where)
    recipe.data = bind(_data_config_type(), data_section, join(where, "data"))
    if recipe.train.token_labels > 0:
        if not recipe.data.masks:
            raise SttoolError(f"{where.rstrip(':')}: train.token_labels needs data.masks: true (synthetic_images)")
        if recipe.model.prunes or recipe.model.exit_layers:
            raise SttoolError(f"{where.rstrip(':')}: train.token_labels needs every patch token: model.keep_rate 1 and no exits")
    return recipe


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> Recipe:
    """Read, merge, override and validate a recipe file."""
    data = apply_overrides(read_recipe_data(path), list(overrides or []))
    return bind_recipe(data, f"{path}:")
