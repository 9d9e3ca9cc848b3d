"""The synthetic image tasks, one row each: their class names and the renderer of their scenes.

``shapes`` labels the quickstart (10 shape kinds), ``pretrain`` 16 other kinds (the earlier micro
backbone's pre-training), and ``formula`` the formula-driven classes the micro backbone is pre-trained
on now (fractals and contours, ``formula.py``). Every renderer maps labels (B,), in the order of
``names``, an image side and a generator to images uint8 (B, 3, S, S) and foreground masks (B, S, S).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from sttool.data.synthetic.formula import formula_class_names, formula_classes, render_formula
from sttool.data.synthetic.render import render_images
from sttool.data.synthetic.shapes import PRETRAIN_SHAPES, SHAPES, Inside

Render = Callable[[Tensor, int, torch.Generator], tuple[Tensor, Tensor]]
FORMULA_CLASSES = 1000


@dataclass(frozen=True)
class ImageTask:
    """A synthetic image task: class names in generation order (label k is ``names[k]``), its renderer,
    and the id that seeds its files apart from the other tasks'."""

    names: tuple[str, ...]
    render: Render
    seed_id: int

    @property
    def sorted_names(self) -> list[str]:
        """The order class folders are read in: label k on disk is ``sorted_names[k]``."""
        return sorted(self.names)


def _shapes(kinds: dict[str, Inside]) -> Render:
    def render(labels: Tensor, size: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        return render_images(list(kinds.values()), labels, size, generator)

    return render


def _formula(labels: Tensor, size: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    return render_formula(formula_classes(FORMULA_CLASSES), labels, size, generator)


IMAGE_TASKS: dict[str, ImageTask] = {
    "shapes": ImageTask(tuple(SHAPES), _shapes(SHAPES), 0),
    "pretrain": ImageTask(tuple(PRETRAIN_SHAPES), _shapes(PRETRAIN_SHAPES), 1),
    "formula": ImageTask(tuple(formula_class_names(FORMULA_CLASSES)), _formula, 3),  # 2 seeds the motion videos
}
