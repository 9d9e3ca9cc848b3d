"""Formula-driven images for pre-training: each class is a fixed formula, each image a fresh instance.

Two families, as in formula-driven supervised learning (FDSL):

- **fractals** (FractalDB, Kataoka et al., ACCV 2020): a class is an iterated function system of 2 to 4
  contractive affine maps, drawn at random and kept when its attractor fills enough of the frame; an
  instance perturbs the maps' parameters slightly and renders the attractor by the chaos game.
- **contours** (RCDB, Kataoka et al., CVPR 2022, and VisualAtom, Takashima et al., CVPR 2023): a class is
  one to three closed curves ``r(t) = rho * (1 + sum_k a_k sin(f_k t + phi_k))``, drawn smooth or as a
  polygon of a few vertices; an instance jitters amplitudes and phases.

Both are point sets splatted onto a supersampled canvas, so one renderer draws either, in batches, on
any device. Every instance also varies what a class does not fix: rotation, mirror, scale, position,
line width and colour, over the cluttered backgrounds of the shape sets, so a class is its formula and
nothing else. The mask (the strokes, dilated by two pixels) gives token labels and the attention target.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from sttool.data.synthetic.render import Draws, backgrounds, composite, object_colours

SUPERSAMPLE = 2
MAPS = (2, 4)  # affine maps per fractal class, inclusive
CONTOURS = (1, 3)  # curves per contour class, inclusive
HARMONICS = 4  # sine terms per curve
CHAINS, STEPS, BURN_IN = 512, 14, 6  # chaos game: parallel chains, iterations, iterations not drawn
CURVE_POINTS = 640  # points along each curve
MIN_FILL, MAX_FILL = 0.12, 0.6  # share of a 32 x 32 grid a fractal class's attractor must cover
JITTER = 0.04  # std of the per-instance perturbation of a fractal's map parameters
RADIUS = (0.28, 0.46)  # the object's half-size as a share of the image side


@dataclass(frozen=True)
class FormulaClasses:
    """The formulas of ``num_classes`` classes drawn from ``seed``: the first half fractals, the rest contours.

    ``maps`` (F, M, 2, 3) and ``probs`` (F, M) hold the fractal classes' affine maps (unused maps have
    probability 0); ``curves`` (C, K, 1 + 3 * HARMONICS) the contour classes' curves (radius, then
    frequency, amplitude and phase per harmonic; radius 0 marks an unused curve) and ``vertices`` (C,)
    their polygon's vertex count (0: smooth).
    """

    num_classes: int
    seed: int
    maps: Tensor
    probs: Tensor
    curves: Tensor
    vertices: Tensor

    @property
    def num_fractals(self) -> int:
        return int(self.maps.shape[0])



def _attractor_fill(maps: np.ndarray, probs: np.ndarray, rng: np.random.Generator, points: int = 4000) -> float:
    """Share of a 32 x 32 grid the attractor covers, scaled to its bounding box (FractalDB's filling rate)."""
    x = rng.uniform(-1, 1, (256, 2))
    seen = []
    for step in range(points // 256 + 6):
        pick = rng.choice(len(probs), size=len(x), p=probs)
        x = np.einsum("nij,nj->ni", maps[pick, :, :2], x) + maps[pick, :, 2]
        if not np.isfinite(x).all() or np.abs(x).max() > 1e4:
            return 0.0
        if step >= 6:
            seen.append(x)
    cloud = np.concatenate(seen)
    low, high = cloud.min(0), cloud.max(0)
    span = (high - low).max()
    if span < 1e-6:
        return 0.0
    cells = np.floor((cloud - low) / span * 31.999).astype(int)
    return len(np.unique(cells[:, 0] * 32 + cells[:, 1])) / 1024


def _fractal_class(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One IFS: maps (M, 2, 3) of contractive affine maps (singular values below 0.95) whose attractor fills
    between MIN_FILL and MAX_FILL of its bounding box, and their probabilities (by |det|, as FractalDB)."""
    while True:
        count = int(rng.integers(MAPS[0], MAPS[1] + 1))
        maps = rng.uniform(-1, 1, (count, 2, 3))
        if np.linalg.svd(maps[:, :, :2], compute_uv=False).max() >= 0.95:
            continue
        dets = np.abs(np.linalg.det(maps[:, :, :2]))
        if dets.sum() < 1e-3:
            continue
        probs = dets / dets.sum()
        if MIN_FILL <= _attractor_fill(maps, probs, rng) <= MAX_FILL:
            return maps, probs


def _contour_class(rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """One to three curves (radius, then frequency, amplitude and phase per harmonic) and a vertex count."""
    curves = np.zeros((CONTOURS[1], 1 + 3 * HARMONICS))
    for k in range(int(rng.integers(CONTOURS[0], CONTOURS[1] + 1))):
        curves[k, 0] = 1.0 if k == 0 else rng.uniform(0.3, 0.85)
        frequencies = rng.choice(np.arange(1, 13), HARMONICS, replace=False)
        amplitudes = rng.uniform(0, 0.35, HARMONICS) * (rng.random(HARMONICS) < 0.75)
        phases = rng.uniform(0, 2 * math.pi, HARMONICS)
        curves[k, 1:] = np.stack([frequencies, amplitudes, phases], axis=1).reshape(-1)
    vertices = 0 if rng.random() < 0.5 else int(rng.integers(3, 13))
    return curves, vertices


def formula_class_names(num_classes: int) -> list[str]:
    """``000_fractal`` ... ``999_contour``: the number first and zero-padded, so sorted order is label order."""
    width = len(str(num_classes - 1))
    return [f"{k:0{width}d}_{'fractal' if k < num_classes // 2 else 'contour'}" for k in range(num_classes)]


@lru_cache(maxsize=4)
def formula_classes(num_classes: int, seed: int = 0) -> FormulaClasses:
    """The class formulas: the same ``num_classes`` and ``seed`` give the same classes on every machine."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, num_classes, 0xF0]))
    fractals = num_classes // 2
    maps = np.zeros((fractals, MAPS[1], 2, 3))
    probs = np.zeros((fractals, MAPS[1]))
    for k in range(fractals):
        m, p = _fractal_class(rng)
        maps[k, : len(p)], probs[k, : len(p)] = m, p
    contours = [_contour_class(rng) for _ in range(num_classes - fractals)]
    curves = np.stack([c for c, _ in contours]) if contours else np.zeros((0, CONTOURS[1], 1 + 3 * HARMONICS))
    vertices = np.array([v for _, v in contours], dtype=np.int64)
    return FormulaClasses(num_classes, seed, torch.tensor(maps, dtype=torch.float32), torch.tensor(probs, dtype=torch.float32),
                          torch.tensor(curves, dtype=torch.float32), torch.tensor(vertices))


def _normalise(points: Tensor) -> Tensor:
    """Points (B, P, 2) centred on their bounding box and scaled so its larger half-side is 1."""
    low, high = points.amin(dim=1, keepdim=True), points.amax(dim=1, keepdim=True)
    half = ((high - low) / 2).amax(dim=2, keepdim=True).clamp(min=1e-6)
    return (points - (low + high) / 2) / half


def fractal_points(classes: FormulaClasses, index: Tensor, draws: Draws) -> Tensor:
    """(B, CHAINS * (STEPS - BURN_IN), 2) attractor points of fractal classes ``index`` (B,), in [-1, 1]."""
    device = draws.device
    maps = classes.maps.to(device)[index]  # (B, M, 2, 3)
    maps = maps + draws.normal(JITTER, *maps.shape) * (classes.probs.to(device)[index] > 0)[:, :, None, None]
    probs = classes.probs.to(device)[index]  # (B, M)
    batch = index.shape[0]
    x = draws.uniform(-1, 1, batch, CHAINS, 2)
    rows = torch.arange(batch, device=device)[:, None]
    cumulative = probs.cumsum(dim=1)
    cumulative[:, -1] = 1.0 + 1e-6  # rounding never leaves a draw past the last map
    seen = []
    for step in range(STEPS):
        pick = torch.searchsorted(cumulative, draws.uniform(0, 1, batch, CHAINS)).clamp(max=probs.shape[1] - 1)  # (B, CHAINS)
        chosen = maps[rows, pick]  # (B, CHAINS, 2, 3)
        x = torch.einsum("bcij,bcj->bci", chosen[..., :2], x) + chosen[..., 2]
        x = x.clamp(-1e3, 1e3)  # a jittered map may stop contracting; keep the points finite
        if step >= BURN_IN:
            seen.append(x)
    return _normalise(torch.cat(seen, dim=1))


def contour_points(classes: FormulaClasses, index: Tensor, draws: Draws) -> Tensor:
    """(B, CONTOURS * CURVE_POINTS, 2) points along the curves of contour classes ``index`` (B,), in [-1, 1];
    an unused curve's points sit on its class's first curve."""
    device = draws.device
    curves = classes.curves.to(device)[index]  # (B, K, 1 + 3H)
    batch, count = curves.shape[:2]
    radius = curves[:, :, 0]
    harmonic = curves[:, :, 1:].view(batch, count, HARMONICS, 3)
    frequency, amplitude, phase = harmonic.unbind(3)  # (B, K, H) each
    amplitude = amplitude * (1 + draws.normal(0.15, batch, count, HARMONICS))
    phase = phase + draws.normal(0.15, batch, count, HARMONICS)
    vertices = classes.vertices.to(device)[index]  # (B,)
    t = torch.linspace(0, 2 * math.pi, CURVE_POINTS + 1, device=device)[:-1]
    sides = vertices.clamp(min=1).float()[:, None, None]
    corner = torch.floor(t / (2 * math.pi) * sides) * (2 * math.pi / sides)  # (B, 1, T): the edge each t lies on
    span = (2 * math.pi / sides) * torch.ones_like(corner)
    fraction = (t - corner) / span
    polygon = (vertices > 0)[:, None, None]

    def curve(at: Tensor) -> Tensor:  # (B, 1 or K, T) angles -> (B, K, T, 2) points
        r = radius[..., None] * (1 + (amplitude[..., None] * torch.sin(frequency[..., None] * at[:, :, None] + phase[..., None])).sum(2))
        return torch.stack([r * at.cos(), r * at.sin()], dim=-1)

    smooth = curve(t.expand(batch, 1, -1))
    start, end = curve(corner), curve(corner + span)
    points = torch.where(polygon[..., None], start + (end - start) * fraction[..., None], smooth)  # (B, K, T, 2)
    points = torch.where((radius > 0)[:, :, None, None], points, points[:, :1])
    return _normalise(points.reshape(batch, count * CURVE_POINTS, 2))


def splat(points: Tensor, size: int, widths: Tensor) -> Tensor:
    """(B, P, 2) pixel coordinates -> (B, S, S) coverage in [0, 1] of strokes ``widths`` (B,) 1 or 2
    supersampled pixels wide (points outside the frame are dropped)."""
    batch = points.shape[0]
    fine = size * SUPERSAMPLE
    cells = torch.floor(points * SUPERSAMPLE).long()  # (B, P, 2)
    inside = ((cells >= 0) & (cells < fine)).all(dim=2)
    flat = torch.where(inside, cells[..., 1] * fine + cells[..., 0], fine * fine)  # outside -> a spare cell
    canvas = torch.zeros(batch, fine * fine + 1, device=points.device)
    canvas.scatter_(1, flat, 1.0)
    canvas = canvas[:, :-1].view(batch, fine, fine)
    thick = (widths > 1).nonzero().squeeze(1)
    canvas[thick] = dilate(canvas[thick])
    return F.avg_pool2d(canvas.unsqueeze(1), SUPERSAMPLE).squeeze(1) ** 0.5  # soft, visible at the edges


def dilate(canvas: Tensor) -> Tensor:
    """A 3 x 3 dilation of (B, H, W) by shifted maxima (cheaper than max pooling on a CPU)."""
    rows = canvas.clone()
    rows[:, 1:] = torch.maximum(rows[:, 1:], canvas[:, :-1])
    rows[:, :-1] = torch.maximum(rows[:, :-1], canvas[:, 1:])
    out = rows.clone()
    out[:, :, 1:] = torch.maximum(out[:, :, 1:], rows[:, :, :-1])
    out[:, :, :-1] = torch.maximum(out[:, :, :-1], rows[:, :, 1:])
    return out


def render_formula(classes: FormulaClasses, labels: Tensor, size: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Images uint8 (B, 3, S, S) of class formulas ``labels`` (B,) over cluttered backgrounds, and their
    bool masks (B, S, S)."""
    draws = Draws(generator)
    labels = labels.to(draws.device)
    batch = labels.shape[0]
    is_fractal = labels < classes.num_fractals
    points = torch.zeros(batch, max(CHAINS * (STEPS - BURN_IN), CONTOURS[1] * CURVE_POINTS), 2, device=draws.device)
    for mask, make, offset in ((is_fractal, fractal_points, 0), (~is_fractal, contour_points, classes.num_fractals)):
        rows = mask.nonzero().squeeze(1)
        if rows.numel():
            drawn = make(classes, labels[rows] - offset, draws)
            repeat = -(-points.shape[1] // drawn.shape[1])
            points[rows] = drawn.repeat(1, repeat, 1)[:, : points.shape[1]]
    angle = draws.uniform(0, 2 * math.pi, batch)
    mirror = torch.where(draws.uniform(0, 1, batch) < 0.5, -1.0, 1.0)
    radius = draws.uniform(*RADIUS, batch) * size
    centre = radius[:, None] + draws.uniform(0, 1, batch, 2) * (size - 2 * radius[:, None])
    cos, sin = angle.cos()[:, None], angle.sin()[:, None]
    u, v = points[..., 0] * mirror[:, None], points[..., 1]
    pixels = torch.stack([cos * u - sin * v, sin * u + cos * v], dim=2) * radius[:, None, None] + centre[:, None]
    alpha = splat(pixels, size, draws.integers(1, 2, batch))
    backdrop = backgrounds(draws, batch, size)
    mask = dilate(dilate((alpha > 0.2).float())) > 0  # the strokes widened by 2 pixels each side
    return composite(backdrop, alpha, object_colours(draws, backdrop)), mask
