"""Batched rendering of the synthetic scenes in torch, on any device: a cluttered textured background,
one anti-aliased shape composited over it, and its foreground mask.

The clutter (texture, strokes, small blobs) makes the object something to find, not the only thing in
the image, so whether kept tokens fall on the object is a meaningful measurement. Every random draw
comes from one ``torch.Generator``, so a batch is a function of the generator's seed and device; on a
GPU a batch of thousands renders in milliseconds, which lets pre-training draw fresh images forever.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from sttool.data.synthetic.shapes import SHAPES, Inside

SUPERSAMPLE = 2  # shapes are rendered at 2x and averaged: soft edges, and a mask at coverage >= 0.5
OBJECT_RADIUS = (0.26, 0.40)  # share of the image side; keeps the object a minority of the pixels
CLIP_RADIUS = (0.16, 0.24)  # share of the frame side
CLIP_SPEED = (1.5, 2.5)  # pixels per frame at 64 px, scaled with the frame size
STROKES, BLOBS = (4, 8), (2, 5)  # counts per image, inclusive
MIN_COLOUR_DISTANCE = 0.4  # the object's colour against the background's mean colour (RGB in [0, 1])


class Draws:
    """Random tensors from one generator, on its device."""

    def __init__(self, generator: torch.Generator) -> None:
        self.generator, self.device = generator, generator.device

    def uniform(self, low: float | Tensor, high: float | Tensor, *shape: int) -> Tensor:
        return low + (high - low) * torch.rand(shape, generator=self.generator, device=self.device)

    def integers(self, low: int, high: int, *shape: int) -> Tensor:
        """Integers in [low, high]."""
        return torch.randint(low, high + 1, shape, generator=self.generator, device=self.device)

    def normal(self, std: float, *shape: int) -> Tensor:
        return std * torch.randn(shape, generator=self.generator, device=self.device)


def _pixel_centres(size: int, device: torch.device) -> tuple[Tensor, Tensor]:
    at = torch.arange(size, device=device, dtype=torch.float32) + 0.5
    y, x = torch.meshgrid(at, at, indexing="ij")  # (S, S) each
    return x, y


def _paint(image: Tensor, where: Tensor, colour: Tensor) -> Tensor:
    """``image`` (B, 3, S, S) with ``colour`` (B, 3) wherever ``where`` (B, S, S) holds."""
    return torch.where(where.unsqueeze(1), colour[:, :, None, None], image)


def backgrounds(draws: Draws, batch: int, size: int) -> Tensor:
    """(B, 3, S, S) in [0, 1]: a two-colour low-frequency field, a texture (stripes, checks or grain),
    strokes and small blobs."""
    x, y = _pixel_centres(size, draws.device)
    scale = size / 64.0
    field = F.interpolate(draws.uniform(0, 1, batch, 1, 5, 5), size=(size, size), mode="bilinear", align_corners=True)
    image = draws.uniform(0, 1, batch, 3, 1, 1) * field + draws.uniform(0, 1, batch, 3, 1, 1) * (1 - field)  # (B, 3, S, S)
    kind = draws.integers(0, 2, batch, 1, 1)
    angle, period = draws.uniform(0, math.pi, batch, 1, 1), draws.uniform(4, 12, batch, 1, 1) * scale
    stripes = 0.12 * torch.sin(2 * math.pi * (x * angle.cos() + y * angle.sin()) / period)  # (B, S, S)
    cell = (draws.integers(3, 8, batch, 1, 1) * scale).floor().clamp(min=1)
    checks = 0.1 * ((torch.div(x, cell, rounding_mode="floor") + torch.div(y, cell, rounding_mode="floor")) % 2 - 0.5)
    grain = draws.normal(0.06, batch, size, size)
    image = image + torch.where(kind == 0, stripes, torch.where(kind == 1, checks, grain)).unsqueeze(1)
    strokes = draws.integers(*STROKES, batch)
    starts, ends = draws.uniform(0, size, batch, STROKES[1], 2), draws.uniform(0, size, batch, STROKES[1], 2)
    widths, colours = draws.uniform(0.5, 1.2, batch, STROKES[1]) * scale, draws.uniform(0, 1, batch, STROKES[1], 3)
    for k in range(STROKES[1]):
        (ax, ay), (dx, dy) = starts[:, k, :, None, None].unbind(1), (ends[:, k] - starts[:, k])[:, :, None, None].unbind(1)
        t = (((x - ax) * dx + (y - ay) * dy) / (dx * dx + dy * dy).clamp(min=1e-9)).clamp(0, 1)  # (B, S, S)
        near = torch.hypot(x - ax - t * dx, y - ay - t * dy) <= widths[:, k, None, None]
        image = _paint(image, near & (k < strokes)[:, None, None], colours[:, k])
    blobs = draws.integers(*BLOBS, batch)
    centres, radii = draws.uniform(0, size, batch, BLOBS[1], 2), draws.uniform(1.5, 4.0, batch, BLOBS[1], 2) * scale
    colours = draws.uniform(0, 1, batch, BLOBS[1], 3)
    for k in range(BLOBS[1]):
        (cx, cy), (rx, ry) = centres[:, k, :, None, None].unbind(1), radii[:, k, :, None, None].unbind(1)
        inside = ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1.0
        image = _paint(image, inside & (k < blobs)[:, None, None], colours[:, k])
    return image.clamp(0, 1)


def coverage(kinds: list[Inside], index: Tensor, size: int, centres: Tensor, radii: Tensor, angles: Tensor,
             wrap: bool = False) -> Tensor:
    """(N, S, S) share of each pixel covered by shape ``kinds[index[n]]`` at ``centres`` (N, 2) pixels,
    ``radii`` (N,) pixels, rotated by ``angles`` (N,); with ``wrap`` the canvas is a torus."""
    fine = (torch.arange(size * SUPERSAMPLE, device=centres.device, dtype=torch.float32) + 0.5) / SUPERSAMPLE
    dx = fine[None, None, :] - centres[:, 0, None, None]  # (N, 1, kS)
    dy = fine[None, :, None] - centres[:, 1, None, None]  # (N, kS, 1)
    if wrap:
        dx, dy = (dx + size / 2) % size - size / 2, (dy + size / 2) % size - size / 2
    cos, sin, radius = angles.cos()[:, None, None], angles.sin()[:, None, None], radii[:, None, None]
    u, v = (dx * cos + dy * sin) / radius, (-dx * sin + dy * cos) / radius  # (N, kS, kS)
    covered = torch.zeros_like(u, dtype=torch.bool)
    for kind in index.unique().tolist():
        rows = (index == kind).nonzero().squeeze(1)
        covered[rows] = kinds[kind](u[rows], v[rows])
    return F.avg_pool2d(covered.float().unsqueeze(1), SUPERSAMPLE).squeeze(1)  # (N, S, S)


def object_colours(draws: Draws, backdrops: Tensor, tries: int = 32) -> Tensor:
    """(B, 3) colours that stand out from each backdrop's mean colour (the first of ``tries`` draws that does)."""
    batch = backdrops.shape[0]
    candidates = draws.uniform(0, 1, batch, tries, 3)
    far = (candidates - backdrops.mean(dim=(2, 3))[:, None]).norm(dim=2) >= MIN_COLOUR_DISTANCE  # (B, tries)
    first = torch.where(far.any(dim=1), far.float().argmax(dim=1), tries - 1)
    return candidates[torch.arange(batch, device=backdrops.device), first]


def composite(backdrops: Tensor, alpha: Tensor, colours: Tensor) -> Tensor:
    """The objects over the backdrops as uint8: (B, 3, S, S) over, (B, S, S) alpha, (B, 3) colours."""
    image = backdrops * (1 - alpha.unsqueeze(1)) + colours[:, :, None, None] * alpha.unsqueeze(1)
    return (image * 255).round().clamp(0, 255).to(torch.uint8)


def render_images(kinds: list[Inside], labels: Tensor, size: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Images uint8 (B, 3, S, S) showing shape ``kinds[labels[b]]`` each, and their bool masks (B, S, S)."""
    draws = Draws(generator)
    batch = labels.shape[0]
    backdrop = backgrounds(draws, batch, size)
    radii = draws.uniform(*OBJECT_RADIUS, batch) * size
    centres = radii[:, None] + draws.uniform(0, 1, batch, 2) * (size - 2 * radii[:, None])  # within the image
    alpha = coverage(kinds, labels.to(draws.device), size, centres, radii, draws.uniform(0, 2 * math.pi, batch))
    return composite(backdrop, alpha, object_colours(draws, backdrop)), alpha >= 0.5


def render_clips(directions: Tensor, size: int, num_frames: int, generator: torch.Generator) -> tuple[Tensor, dict[str, Tensor]]:
    """Clips uint8 (B, T, 3, S, S) of one shape moving towards ``directions[b] * 45`` degrees (image y
    points down) and wrapping around the edges, and what was drawn: kind (B,), colour (B, 3) and the
    centres (B, T, 2). Kind, size, colour, rotation, speed, start and background do not depend on the
    direction, so no single frame tells it."""
    draws = Draws(generator)
    batch = directions.shape[0]
    backdrop = backgrounds(draws, batch, size)
    kinds = draws.integers(0, len(SHAPES) - 1, batch)
    radii = draws.uniform(*CLIP_RADIUS, batch) * size
    start = draws.uniform(0, size, batch, 2)
    heading = directions.to(draws.device).float() * (math.pi / 4)
    velocity = draws.uniform(*CLIP_SPEED, batch, 1) * (size / 64.0) * torch.stack([heading.cos(), heading.sin()], dim=1)
    rotation, colour = draws.uniform(0, 2 * math.pi, batch), object_colours(draws, backdrop)
    steps = torch.arange(num_frames, device=draws.device, dtype=torch.float32)
    centres = (start[:, None] + velocity[:, None] * steps[None, :, None]) % size  # (B, T, 2)
    alpha = coverage(list(SHAPES.values()), kinds.repeat_interleave(num_frames), size, centres.reshape(-1, 2),
                     radii.repeat_interleave(num_frames), rotation.repeat_interleave(num_frames), wrap=True)
    frames = composite(backdrop.repeat_interleave(num_frames, dim=0), alpha, colour.repeat_interleave(num_frames, dim=0))
    return frames.view(batch, num_frames, 3, size, size), {"kind": kinds, "colour": colour, "centres": centres}
