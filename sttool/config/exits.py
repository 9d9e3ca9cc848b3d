"""The ``exits`` section of a recipe: how a multi-exit model trains and how its thresholds are chosen."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sttool.errors import SttoolError


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
