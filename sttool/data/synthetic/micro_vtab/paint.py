"""Painting helpers shared by the micro-VTAB renderers: fills that stand out from what lies beneath,
compositing, shapes placed by part, and plain backdrops. Images here are float (B, 3, S, S) in [0, 1]."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from sttool.data.synthetic.render import Draws, _pixel_centres, coverage, object_colours
from sttool.data.synthetic.shapes import Inside


def fill(draws: Draws, under: Tensor, size: int, stripes: bool = True) -> Tensor:
    """(B, 3, S, S) paint for one part per image: a colour that stands out from ``under``, striped with a
    second colour in about a third of the images when ``stripes``."""
    batch = under.shape[0]
    first = object_colours(draws, under)[:, :, None, None]
    if not stripes:
        return first.expand(-1, -1, size, size)
    second = object_colours(draws, under)[:, :, None, None]
    x, y = _pixel_centres(size, draws.device)
    angle, period = draws.uniform(0, math.pi, batch, 1, 1), draws.uniform(3, 7, batch, 1, 1) * size / 64
    band = (torch.sin(2 * math.pi * (x * angle.cos() + y * angle.sin()) / period) > 0).unsqueeze(1)  # (B, 1, S, S)
    striped = (draws.uniform(0, 1, batch) < 0.33)[:, None, None, None]
    return torch.where(striped & band, second, first)


def over(image: Tensor, alpha: Tensor, paint: Tensor) -> Tensor:
    """``paint`` (B, 3, S, S) over ``image`` where ``alpha`` (B, S, S) covers it."""
    return image * (1 - alpha.unsqueeze(1)) + paint * alpha.unsqueeze(1)


def part_coverage(kinds: list[Inside], index: Tensor, size: int, centres: Tensor, radii: Tensor, angles: Tensor) -> Tensor:
    """(B, P, S, S) coverage of P parts per image: kind ``index`` (B, P), ``centres`` (B, P, 2) pixels,
    ``radii`` (B, P) pixels, rotation ``angles`` (B, P)."""
    batch, parts = index.shape
    alpha = coverage(kinds, index.reshape(-1), size, centres.reshape(-1, 2), radii.reshape(-1), angles.reshape(-1))
    return alpha.view(batch, parts, size, size)


def smooth_backdrop(draws: Draws, batch: int, size: int) -> Tensor:
    """(B, 3, S, S): a two-colour low-frequency field without clutter."""
    field = torch.nn.functional.interpolate(draws.uniform(0, 1, batch, 1, 4, 4), size=(size, size), mode="bilinear", align_corners=True)
    return draws.uniform(0, 1, batch, 3, 1, 1) * field + draws.uniform(0, 1, batch, 3, 1, 1) * (1 - field)


def to_uint8(image: Tensor) -> Tensor:
    return (image * 255).round().clamp(0, 255).to(torch.uint8)
