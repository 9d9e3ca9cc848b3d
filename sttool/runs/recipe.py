"""A run's recipe: the ``model`` section (``models.config``), the ``data`` section (``data.config``) and
the sections that say how the run trains: ``optim``, ``train`` and ``exits``.

A recipe file may ``extends: base.yaml`` (relative to the file; merged section by section by
``config.compose``, so the 19 VTAB-1K tasks share one base); overrides (``optim.lr=1e-3`` or
``~key``) apply last; ``config.schema`` binds the result to these types and names any bad key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from sttool.config.compose import read_recipe_data
from sttool.config.schema import apply_overrides, bind
from sttool.data.config import DataConfig
from sttool.errors import SttoolError
from sttool.models.config import ModelConfig

MAX_LR = 10.0  # an AdamW learning rate above this is a typo, not a setting
MAX_WEIGHT_DECAY = 10.0


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
        for name in ("lr", "blr"):
            value = getattr(self, name)
            if value is not None and not 0 < value <= MAX_LR:
                raise SttoolError(f"{where}.{name}: {value} is outside (0, {MAX_LR:g}]; AdamW's learning rates are around 1e-5 to 1e-2")
        if self.weight_decay > MAX_WEIGHT_DECAY:
            raise SttoolError(f"{where}.weight_decay: {self.weight_decay} is above {MAX_WEIGHT_DECAY:g}; the usual values are 0 to 0.3")
        if self.lr is not None and self.min_lr > self.lr:
            raise SttoolError(f"{where}.min_lr: {self.min_lr} is above optim.lr {self.lr}; the cosine schedule ends at min_lr")
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
    compile: bool = False  # torch.compile the model for training and evaluation (fixed keep rates: one graph, no breaks)
    # EViT's keep-rate schedule (``shrink_start_epoch``, ``shrink_epochs`` in its code): every token kept for
    # the first epochs, then a cosine from 1 to model.keep_rate. None: EViT's proportions for EViT methods
    # (1/30 and 1/3 of the epochs, its 10 and 100 of 300), no schedule for the others
    shrink_start_epoch: int | None = None
    shrink_epochs: int | None = None
    loggers: list[str] = field(default_factory=list)  # experiment trackers beside metrics.jsonl: tensorboard, wandb, mlflow
    token_labels: float = 0.0  # weight of token labelling (needs data.masks; pre-training from scratch)
    # weight of the [CLS]-attention target (with token_labels): from block attention_from on, the [CLS]
    # token's attention over the patches learns the object's share of each patch (pre-training from scratch)
    attention_labels: float = 0.0
    attention_from: int = 4

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
        if self.attention_labels < 0:
            raise SttoolError(f"{where}.attention_labels: {self.attention_labels} must be >= 0")
        if self.attention_labels > 0 and self.token_labels <= 0:
            raise SttoolError(f"{where}.attention_labels: it trains with token labels; set train.token_labels > 0 as well")
        if self.attention_from < 1:
            raise SttoolError(f"{where}.attention_from: {self.attention_from} must count blocks from 1")
        if self.epochs > 100_000 or self.batch_size > 1_000_000:
            raise SttoolError(f"{where}: epochs {self.epochs} or batch_size {self.batch_size} is beyond any run sttool can make")
        unknown = [name for name in self.loggers if name not in ("tensorboard", "wandb", "mlflow")]
        if unknown:
            raise SttoolError(f"{where}.loggers: '{unknown[0]}' is not a tracker; valid: tensorboard, wandb, mlflow")
        import importlib.util

        missing = [name for name in self.loggers if importlib.util.find_spec(name) is None]
        if missing:  # said when the recipe is read, before a run folder is touched
            raise SttoolError(f"{where}.loggers: {missing[0]} is not installed: pip install 'sttool[{missing[0]}]'")
        for name in ("shrink_start_epoch", "shrink_epochs"):
            value = getattr(self, name)
            if value is not None and not 0 <= value <= self.epochs:
                raise SttoolError(f"{where}.{name}: {value} is outside 0..{self.epochs} (train.epochs)")
        if self.token_labels > 0 and (self.mixup > 0 or self.cutmix > 0):
            raise SttoolError(f"{where}.token_labels: mixed images have no per-patch labels; set mixup and cutmix to 0")


@dataclass
class ExitsConfig:
    """The ``exits`` section of a recipe: how exits train, and how their thresholds are calibrated."""

    loss_weights: list[float] | None = None  # one per exit, the final head last; None: all equal
    graph: Literal["none", "labels", "features"] = "none"
    graph_weight: float = 0.1
    distill_weight: float = 0.0  # self-distillation from the last exit
    distill_temperature: float = 1.0
    sweep_points: int = 39  # MSDNet's geometric exit distributions, p = 0.05 ... 1.95
    operating_point: Literal["accuracy_drop", "budget"] = "accuracy_drop"
    max_accuracy_drop: float = 0.5  # points of val top-1 below the model without early exit
    budget: float = 0.75  # expected GFLOPs as a share of the model without early exit ("budget")

    def check(self, where: str) -> None:
        if self.loss_weights is not None and any(w < 0 for w in self.loss_weights):
            raise SttoolError(f"{where}.loss_weights: {self.loss_weights} must not be negative")
        for name in ("graph_weight", "distill_weight", "max_accuracy_drop"):
            if getattr(self, name) < 0:
                raise SttoolError(f"{where}.{name}: {getattr(self, name)} must be >= 0")
        if self.distill_temperature <= 0 or not 0 < self.budget <= 1 or self.sweep_points < 2:
            raise SttoolError(f"{where}: distill_temperature > 0, budget in (0, 1] and sweep_points >= 2 are required")


@dataclass
class Recipe:
    """Everything a run needs. ``output_dir`` may use ``{name}``."""

    name: str = "run"
    output_dir: str = "runs/{name}"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    exits: ExitsConfig = field(default_factory=ExitsConfig)

    def keep_rate_schedule(self) -> tuple[int, int]:
        """(epochs with every token kept, epochs of the cosine down to the keep rate): EViT's schedule."""
        evit = self.model.is_evit and self.model.prunes
        start = self.train.shrink_start_epoch
        shrink = self.train.shrink_epochs
        if start is None:
            start = round(self.train.epochs / 30) if evit else 0
        if shrink is None:
            shrink = round(self.train.epochs / 3) if evit else 0
        return start, min(shrink, self.train.epochs - start)

    @property
    def num_classes(self) -> int:
        """The class count, once it is known (from the recipe, or from the data when the run starts)."""
        if self.model.num_classes is None:
            raise SttoolError(f"{self.name}: model.num_classes is not known yet; it comes from the data when the run starts")
        return self.model.num_classes

    @property
    def run_dir(self) -> Path:
        return Path(self.output_dir.format(name=self.name))


def bind_recipe(data: dict[str, Any], where: str) -> Recipe:
    """Validate a recipe mapping: unknown keys name the closest valid key; numbers are typed."""
    recipe = bind(Recipe, data, where)
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
