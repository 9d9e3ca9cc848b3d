"""Shape kinds as inside-tests on coordinates in the shape's own frame (the shape fits the unit disc).

Two disjoint vocabularies: ``SHAPES`` labels the quickstart task, ``PRETRAIN_SHAPES`` a different
task for pre-training a small backbone (no kind appears in both).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Mask = np.ndarray  # bool, same shape as the coordinates


def _regular(n: int, radius: float, start_deg: float = 90.0) -> np.ndarray:
    angles = np.deg2rad(start_deg + 360.0 * np.arange(n) / n)
    return radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)  # (n, 2)


def _star(points: int, outer: float, inner: float) -> np.ndarray:
    radii = np.where(np.arange(2 * points) % 2 == 0, outer, inner)
    angles = np.deg2rad(90.0 + 180.0 * np.arange(2 * points) / points)
    return radii[:, None] * np.stack([np.cos(angles), np.sin(angles)], axis=1)  # (2n, 2)


def inside_polygon(u: np.ndarray, v: np.ndarray, vertices: np.ndarray) -> Mask:
    """Even-odd rule: inside when a ray to +u crosses the outline an odd number of times."""
    inside = np.zeros(u.shape, dtype=bool)
    x0, y0 = vertices[:, 0], vertices[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    for a, b, c, d in zip(x0, y0, x1, y1, strict=True):
        if b == d:
            continue
        straddles = (b > v) != (d > v)
        crossing_u = a + (v - b) * (c - a) / (d - b)
        inside ^= straddles & (u < crossing_u)
    return inside


def _poly(vertices: list[tuple[float, float]] | np.ndarray) -> Callable[[np.ndarray, np.ndarray], Mask]:
    points = np.asarray(vertices, dtype=np.float64)
    return lambda u, v: inside_polygon(u, v, points)


def _heart(u: np.ndarray, v: np.ndarray) -> Mask:
    x, y = 1.15 * u, -1.15 * v + 0.12
    return (x * x + y * y - 1.0) ** 3 - x * x * y**3 <= 0.0


def _radius(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.hypot(u, v)


SHAPES: dict[str, Callable[[np.ndarray, np.ndarray], Mask]] = {
    "circle": lambda u, v: _radius(u, v) <= 0.9,
    "square": lambda u, v: (np.abs(u) <= 0.66) & (np.abs(v) <= 0.66),
    "triangle": _poly(_regular(3, 1.0)),
    "cross": lambda u, v: ((np.abs(u) <= 0.28) & (np.abs(v) <= 0.9)) | ((np.abs(v) <= 0.28) & (np.abs(u) <= 0.9)),
    "star": _poly(_star(5, 1.0, 0.45)),
    "ring": lambda u, v: (_radius(u, v) <= 0.92) & (_radius(u, v) >= 0.52),
    "diamond": lambda u, v: np.abs(u) / 0.55 + np.abs(v) / 0.97 <= 1.0,
    "hexagon": _poly(_regular(6, 0.9, 0.0)),
    "arrow": _poly([(-0.9, -0.22), (0.15, -0.22), (0.15, -0.62), (0.95, 0.0), (0.15, 0.62), (0.15, 0.22), (-0.9, 0.22)]),
    "heart": _heart,
}

PRETRAIN_SHAPES: dict[str, Callable[[np.ndarray, np.ndarray], Mask]] = {
    "pentagon": _poly(_regular(5, 0.95)),
    "octagon": _poly(_regular(8, 0.92, 22.5)),
    "ellipse": lambda u, v: (u / 0.95) ** 2 + (v / 0.5) ** 2 <= 1.0,
    "semicircle": lambda u, v: (_radius(u, v + 0.38) <= 0.95) & (v + 0.38 >= 0.0),
    "crescent": lambda u, v: (_radius(u, v) <= 0.92) & (_radius(u - 0.45, v) > 0.72),
    "trapezoid": _poly([(-0.92, -0.5), (0.92, -0.5), (0.42, 0.5), (-0.42, 0.5)]),
    "parallelogram": _poly([(-0.95, -0.45), (0.4, -0.45), (0.95, 0.45), (-0.4, 0.45)]),
    "l_shape": _poly([(-0.6, -0.9), (-0.18, -0.9), (-0.18, 0.48), (0.7, 0.48), (0.7, 0.9), (-0.6, 0.9)]),
    "t_shape": lambda u, v: ((np.abs(u) <= 0.85) & (v >= 0.45) & (v <= 0.88)) | ((np.abs(u) <= 0.22) & (v >= -0.9) & (v <= 0.45)),
    "chevron": _poly([(-0.9, 0.55), (-0.5, 0.55), (0.0, -0.15), (0.5, 0.55), (0.9, 0.55), (0.0, -0.75)]),
    "bowtie": _poly([(-0.9, -0.7), (0.9, 0.7), (0.9, -0.7), (-0.9, 0.7)]),
    "star4": _poly(_star(4, 1.0, 0.33)),
    "triangle_ring": lambda u, v: inside_polygon(u, v, _regular(3, 1.0)) & ~inside_polygon(u, v, _regular(3, 0.5)),
    "square_ring": lambda u, v: (np.maximum(np.abs(u), np.abs(v)) <= 0.68) & (np.maximum(np.abs(u), np.abs(v)) >= 0.38),
    "arc": lambda u, v: (_radius(u, v + 0.3) <= 0.92) & (_radius(u, v + 0.3) >= 0.52) & (v + 0.3 >= 0.0),
    "teardrop": lambda u, v: (_radius(u, v + 0.3) <= 0.6) | inside_polygon(u, v, np.array([(-0.56, -0.12), (0.56, -0.12), (0.0, 0.95)])),
}

TASKS = {"shapes": SHAPES, "pretrain": PRETRAIN_SHAPES}
