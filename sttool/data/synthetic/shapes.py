"""Shape kinds as inside-tests on coordinates in the shape's own frame (the shape fits the unit disc).

Each kind maps tensors ``u, v`` (any shape, any device) to a bool tensor of the same shape, so a whole
batch of supersampled canvases is tested at once. Two disjoint vocabularies: ``SHAPES`` labels the
quickstart task, ``PRETRAIN_SHAPES`` a different task for pre-training the micro backbone.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

Inside = Callable[[Tensor, Tensor], Tensor]


def _regular(n: int, radius: float, start_deg: float = 90.0) -> list[tuple[float, float]]:
    angles = [math.radians(start_deg + 360.0 * i / n) for i in range(n)]
    return [(radius * math.cos(a), radius * math.sin(a)) for a in angles]


def _star(points: int, outer: float, inner: float) -> list[tuple[float, float]]:
    radii = [outer if i % 2 == 0 else inner for i in range(2 * points)]
    angles = [math.radians(90.0 + 180.0 * i / points) for i in range(2 * points)]
    return [(r * math.cos(a), r * math.sin(a)) for r, a in zip(radii, angles, strict=True)]


def inside_polygon(u: Tensor, v: Tensor, vertices: list[tuple[float, float]]) -> Tensor:
    """Even-odd rule: inside when a ray to +u crosses the outline an odd number of times."""
    inside = torch.zeros_like(u, dtype=torch.bool)
    for (a, b), (c, d) in zip(vertices, vertices[1:] + vertices[:1], strict=True):
        if b == d:
            continue
        straddles = (v < b) != (v < d)
        crossing_u = a + (v - b) * ((c - a) / (d - b))
        inside ^= straddles & (u < crossing_u)
    return inside


def _poly(vertices: list[tuple[float, float]]) -> Inside:
    return lambda u, v: inside_polygon(u, v, vertices)


def _radius(u: Tensor, v: Tensor) -> Tensor:
    return torch.hypot(u, v)


def _heart(u: Tensor, v: Tensor) -> Tensor:
    x, y = 1.15 * u, -1.15 * v + 0.12
    return (x * x + y * y - 1.0) ** 3 - x * x * y**3 <= 0.0


def _box(u: Tensor, v: Tensor) -> Tensor:
    return torch.maximum(u.abs(), v.abs())


SHAPES: dict[str, Inside] = {
    "circle": lambda u, v: _radius(u, v) <= 0.9,
    "square": lambda u, v: _box(u, v) <= 0.66,
    "triangle": _poly(_regular(3, 1.0)),
    "cross": lambda u, v: ((u.abs() <= 0.28) & (v.abs() <= 0.9)) | ((v.abs() <= 0.28) & (u.abs() <= 0.9)),
    "star": _poly(_star(5, 1.0, 0.45)),
    "ring": lambda u, v: (_radius(u, v) <= 0.92) & (_radius(u, v) >= 0.52),
    "diamond": lambda u, v: u.abs() / 0.55 + v.abs() / 0.97 <= 1.0,
    "hexagon": _poly(_regular(6, 0.9, 0.0)),
    "arrow": _poly([(-0.9, -0.22), (0.15, -0.22), (0.15, -0.62), (0.95, 0.0), (0.15, 0.62), (0.15, 0.22), (-0.9, 0.22)]),
    "heart": _heart,
}

PRETRAIN_SHAPES: dict[str, Inside] = {
    "pentagon": _poly(_regular(5, 0.95)),
    "octagon": _poly(_regular(8, 0.92, 22.5)),
    "ellipse": lambda u, v: (u / 0.95) ** 2 + (v / 0.5) ** 2 <= 1.0,
    "semicircle": lambda u, v: (_radius(u, v + 0.38) <= 0.95) & (v + 0.38 >= 0.0),
    "crescent": lambda u, v: (_radius(u, v) <= 0.92) & (_radius(u - 0.45, v) > 0.72),
    "trapezoid": _poly([(-0.92, -0.5), (0.92, -0.5), (0.42, 0.5), (-0.42, 0.5)]),
    "parallelogram": _poly([(-0.95, -0.45), (0.4, -0.45), (0.95, 0.45), (-0.4, 0.45)]),
    "l_shape": _poly([(-0.6, -0.9), (-0.18, -0.9), (-0.18, 0.48), (0.7, 0.48), (0.7, 0.9), (-0.6, 0.9)]),
    "t_shape": lambda u, v: ((u.abs() <= 0.85) & (v >= 0.45) & (v <= 0.88)) | ((u.abs() <= 0.22) & (v >= -0.9) & (v <= 0.45)),
    "chevron": _poly([(-0.9, 0.55), (-0.5, 0.55), (0.0, -0.15), (0.5, 0.55), (0.9, 0.55), (0.0, -0.75)]),
    "bowtie": _poly([(-0.9, -0.7), (0.9, 0.7), (0.9, -0.7), (-0.9, 0.7)]),
    "star4": _poly(_star(4, 1.0, 0.33)),
    "triangle_ring": lambda u, v: inside_polygon(u, v, _regular(3, 1.0)) & ~inside_polygon(u, v, _regular(3, 0.5)),
    "square_ring": lambda u, v: (_box(u, v) <= 0.68) & (_box(u, v) >= 0.38),
    "arc": lambda u, v: (_radius(u, v + 0.3) <= 0.92) & (_radius(u, v + 0.3) >= 0.52) & (v + 0.3 >= 0.0),
    "teardrop": lambda u, v: (_radius(u, v + 0.3) <= 0.6) | inside_polygon(u, v, [(-0.56, -0.12), (0.56, -0.12), (0.0, 0.95)]),
}

TASKS = {"shapes": SHAPES, "pretrain": PRETRAIN_SHAPES}
