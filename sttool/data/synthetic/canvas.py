"""Cluttered textured backgrounds and anti-aliased shapes composited on them (float RGB in [0, 1]).

The clutter (texture, strokes, small blobs) makes the object something to find, not the only thing
in the image, so whether kept tokens fall on the object is a meaningful measurement.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

SUPERSAMPLE = 2  # shapes are rendered at 2x and averaged: soft edges, and a mask at coverage >= 0.5


def _smooth_field(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Random values on a coarse grid, bilinearly interpolated to (size, size): low-frequency variation."""
    grid = rng.random((cells, cells))
    at = np.linspace(0, cells - 1, size)
    rows = np.stack([np.interp(at, np.arange(cells), row) for row in grid])  # (cells, size)
    return np.stack([np.interp(at, np.arange(cells), col) for col in rows.T], axis=1)  # (size, size)


def _pixel_grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    y, x = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5
    return x, y


def background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A two-colour low-frequency field, a texture (stripes, checks or grain), strokes and small blobs."""
    x, y = _pixel_grid(size)
    scale = size / 64.0
    field = _smooth_field(rng, size, 5)[..., None]  # (S, S, 1)
    image = rng.random(3) * field + rng.random(3) * (1.0 - field)  # (S, S, 3)
    texture = int(rng.integers(3))
    if texture == 0:
        angle, period = rng.uniform(0, np.pi), rng.uniform(4, 12) * scale
        image += 0.12 * np.sin(2 * np.pi * (x * np.cos(angle) + y * np.sin(angle)) / period)[..., None]
    elif texture == 1:
        cell = max(1, int(rng.integers(3, 9) * scale))
        image += 0.1 * ((x // cell + y // cell) % 2 - 0.5)[..., None]
    else:
        image += rng.normal(0.0, 0.06, (size, size, 1))
    for _ in range(int(rng.integers(4, 9))):
        a, b = rng.uniform(0, size, 2), rng.uniform(0, size, 2)
        ab = b - a
        t = np.clip(((x - a[0]) * ab[0] + (y - a[1]) * ab[1]) / max(ab @ ab, 1e-9), 0.0, 1.0)
        distance = np.hypot(x - a[0] - t * ab[0], y - a[1] - t * ab[1])
        image[distance <= rng.uniform(0.5, 1.2) * scale] = rng.random(3)
    for _ in range(int(rng.integers(2, 6))):
        centre, radii = rng.uniform(0, size, 2), rng.uniform(1.5, 4.0, 2) * scale
        image[((x - centre[0]) / radii[0]) ** 2 + ((y - centre[1]) / radii[1]) ** 2 <= 1.0] = rng.random(3)
    return np.clip(image, 0.0, 1.0)


def shape_alpha(
    inside: Callable[[np.ndarray, np.ndarray], np.ndarray],
    size: int,
    centre: tuple[float, float],
    radius: float,
    angle: float,
    wrap: bool = False,
) -> np.ndarray:
    """Coverage (size, size) in [0, 1] of a shape at ``centre`` (pixels), ``radius`` (pixels), rotated by
    ``angle``; with ``wrap`` the image is a torus and the shape re-enters at the opposite edge.

    Only the window of pixels within ``radius`` of the centre is evaluated (the shape fits the unit disc).
    """
    reach = int(np.ceil(radius)) + 1
    axes = []
    for c in centre:
        if wrap:
            width = min(2 * reach + 1, size)  # at most one period, so every pixel appears once
            pixels = int(np.floor(c)) - width // 2 + np.arange(width)
        else:
            pixels = np.arange(max(0, int(np.floor(c)) - reach), min(size, int(np.floor(c)) + reach + 1))
        fine = (pixels[:, None] + (np.arange(SUPERSAMPLE) + 0.5) / SUPERSAMPLE).reshape(-1) - c  # (W * k,)
        axes.append((pixels % size, fine))
    (cols, dx), (rows, dy) = axes
    dx, dy = dx[None, :], dy[:, None]
    cos, sin = np.cos(angle), np.sin(angle)
    u, v = (dx * cos + dy * sin) / radius, (-dx * sin + dy * cos) / radius  # (H * k, W * k)
    covered = inside(u, v).astype(np.float64)
    alpha = np.zeros((size, size))
    alpha[np.ix_(rows, cols)] = covered.reshape(len(rows), SUPERSAMPLE, len(cols), SUPERSAMPLE).mean(axis=(1, 3))
    return alpha


def object_colour(rng: np.random.Generator, backdrop: np.ndarray, min_distance: float = 0.4) -> np.ndarray:
    """A random RGB colour that stands out from the backdrop's mean colour (rejection sampling)."""
    mean = backdrop.reshape(-1, 3).mean(axis=0)
    colour = rng.random(3)
    for _ in range(32):
        if np.linalg.norm(colour - mean) >= min_distance:
            break
        colour = rng.random(3)
    return colour


def composite(backdrop: np.ndarray, alpha: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """The object over the backdrop, as uint8 (S, S, 3)."""
    image = backdrop * (1.0 - alpha[..., None]) + colour * alpha[..., None]
    return np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)
