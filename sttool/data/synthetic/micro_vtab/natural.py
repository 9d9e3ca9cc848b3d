"""micro-VTAB's natural-like tasks: object categories with several families each, house-number digits,
and fine-grained flowers, all on clutter and in colours that never tell the class.

Each renderer maps labels (B,) and a generator to images uint8 (B, 3, S, S).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor

from sttool.data.synthetic.micro_vtab.paint import fill, over, part_coverage, smooth_backdrop, to_uint8
from sttool.data.synthetic.render import Draws, backgrounds
from sttool.data.synthetic.shapes import PRETRAIN_SHAPES, SHAPES, Inside

PRIMITIVES: list[Inside] = list(SHAPES.values()) + list(PRETRAIN_SHAPES.values())
OBJECT_CLASSES, FAMILIES, MAX_PARTS = 10, 3, 3
OBJECT_NAMES = tuple(f"category_{k}" for k in range(OBJECT_CLASSES))


@lru_cache(maxsize=4)
def object_families(seed: int = 0) -> Tensor:
    """(classes, families, parts, 6) part layouts: kind, dx, dy, scale, angle, present; fixed by the seed,
    so every set of the same seed has the same categories."""
    rng = np.random.default_rng([seed, 0xC0])
    table = np.zeros((OBJECT_CLASSES, FAMILIES, MAX_PARTS, 6))
    for c in range(OBJECT_CLASSES):
        for f in range(FAMILIES):
            parts = int(rng.integers(2, MAX_PARTS + 1))
            for p in range(parts):
                offset = (0.0, 0.0) if p == 0 else tuple(rng.uniform(-0.55, 0.55, 2))
                table[c, f, p] = (rng.integers(len(PRIMITIVES)), *offset, 1.0 if p == 0 else rng.uniform(0.35, 0.6),
                                  rng.uniform(0, 2 * math.pi), 1.0)
    return torch.tensor(table, dtype=torch.float32)


def render_objects(labels: Tensor, size: int, generator: torch.Generator, seed: int = 0) -> Tensor:
    """Category ``labels[b]``: one of its three families of two or three parts, each part in its own colour
    (plain or striped), jittered, rotated and scaled as a whole, over clutter."""
    draws = Draws(generator)
    batch = labels.shape[0]
    layout = object_families(seed).to(draws.device)[labels.to(draws.device), draws.integers(0, FAMILIES - 1, batch)]  # (B, P, 6)
    image = backgrounds(draws, batch, size)
    radius = draws.uniform(0.2, 0.3, batch) * size
    centre = size / 2 + draws.uniform(-0.18, 0.18, batch, 2) * size
    turn = draws.uniform(-0.5, 0.5, batch)
    cos, sin = turn.cos()[:, None], turn.sin()[:, None]
    offsets = layout[..., 1:3] + draws.normal(0.06, batch, MAX_PARTS, 2)
    rotated = torch.stack([cos * offsets[..., 0] - sin * offsets[..., 1], sin * offsets[..., 0] + cos * offsets[..., 1]], dim=2)
    centres = centre[:, None] + rotated * radius[:, None, None]  # (B, P, 2)
    radii = radius[:, None] * layout[..., 3] * (1 + draws.normal(0.08, batch, MAX_PARTS))
    angles = layout[..., 4] + turn[:, None] + draws.normal(0.15, batch, MAX_PARTS)
    alpha = part_coverage(PRIMITIVES, layout[..., 0].long(), size, centres, radii, angles) * layout[..., 5, None, None]  # (B, P, S, S)
    for p in range(MAX_PARTS):
        image = over(image, alpha[:, p], fill(draws, image, size))
    return to_uint8(image)


DIGIT_NAMES = tuple(str(d) for d in range(10))
GLYPH = 48  # pixels of the glyph bitmaps


@lru_cache(maxsize=1)
def digit_glyphs() -> Tensor:
    """(10, GLYPH, GLYPH) coverage of the digits 0-9 in Pillow's bundled font, centred."""
    font = ImageFont.load_default(size=40)
    glyphs = []
    for digit in DIGIT_NAMES:
        canvas = Image.new("L", (GLYPH, GLYPH), 0)
        draw = ImageDraw.Draw(canvas)
        left, top, right, bottom = draw.textbbox((0, 0), digit, font=font)
        draw.text(((GLYPH - (right - left)) / 2 - left, (GLYPH - (bottom - top)) / 2 - top), digit, fill=255, font=font)
        glyphs.append(torch.from_numpy(np.asarray(canvas, dtype=np.float32) / 255))
    return torch.stack(glyphs)


def _warp(glyphs: Tensor, size: int, centre: Tensor, scale: Tensor, angle: Tensor, shear: Tensor) -> Tensor:
    """Glyphs (N, G, G) placed at ``centre`` (N, 2) pixels, ``scale`` (N,) pixels per glyph side, rotated and
    sheared: (N, S, S) coverage."""
    cos, sin = angle.cos(), angle.sin()
    # output pixel -> glyph coordinates in [-1, 1]: inverse of shear(rotate(scale(glyph))) + centre
    half = scale / 2
    to_unit = torch.stack([torch.stack([cos, sin], 1), torch.stack([-sin, cos], 1)], 1) / half[:, None, None]  # (N, 2, 2)
    unshear = torch.stack([torch.stack([torch.ones_like(shear), -shear], 1), torch.stack([torch.zeros_like(shear), torch.ones_like(shear)], 1)], 1)
    linear = to_unit @ unshear * (size / 2)
    shift = -(linear @ ((centre / (size / 2)) - 1).unsqueeze(2)).squeeze(2)
    theta = torch.cat([linear, shift.unsqueeze(2)], dim=2)  # (N, 2, 3)
    grid = F.affine_grid(theta, [glyphs.shape[0], 1, size, size], align_corners=False)
    return F.grid_sample(glyphs.unsqueeze(1), grid, align_corners=False, padding_mode="zeros").squeeze(1)


def render_digits(labels: Tensor, size: int, generator: torch.Generator) -> Tensor:
    """House-number-like crops: digit ``labels[b]`` in the centre, cut neighbours on both sides (random
    digits), one colour for the digits and another for a smooth, noisy backdrop; size, slant, rotation,
    stroke weight and position vary."""
    draws = Draws(generator)
    batch = labels.shape[0]
    glyphs = digit_glyphs().to(draws.device)
    neighbours = draws.integers(0, 9, batch, 2)
    index = torch.cat([labels.to(draws.device)[:, None], neighbours], dim=1)  # (B, 3)
    height = draws.uniform(0.55, 0.8, batch) * size
    spacing = height * draws.uniform(0.55, 0.75, batch)
    centre = size / 2 + draws.uniform(-0.06, 0.06, batch, 2) * size
    angle, shear = draws.uniform(-0.25, 0.25, batch), draws.uniform(-0.3, 0.3, batch)
    cos, sin = angle.cos(), angle.sin()
    side = torch.tensor([0.0, -1.0, 1.0], device=draws.device)  # centre, left, right
    centres = centre[:, None] + (side[None, :, None] * spacing[:, None, None]) * torch.stack([cos, sin], 1)[:, None]
    alpha = _warp(glyphs[index.reshape(-1)], size, centres.reshape(-1, 2), height.repeat_interleave(3),
                  angle.repeat_interleave(3), shear.repeat_interleave(3)).view(batch, 3, size, size).amax(dim=1)
    bold = draws.uniform(0, 1, batch) < 0.5
    alpha = torch.where(bold[:, None, None], F.avg_pool2d(alpha.unsqueeze(1), 3, 1, 1).squeeze(1).mul(2).clamp(max=1), alpha)
    image = smooth_backdrop(draws, batch, size)
    ink = torch.where(image.mean(dim=(1, 2, 3), keepdim=True) > 0.5, draws.uniform(0, 0.35, batch, 3, 1, 1), draws.uniform(0.65, 1, batch, 3, 1, 1))
    image = image * (1 - alpha.unsqueeze(1)) + ink * alpha.unsqueeze(1)
    image = image + draws.normal(0.04, batch, 1, size, size)
    return to_uint8(image)


PETAL_COUNTS = (4, 5, 6, 7, 8)
PETALS: dict[str, Inside] = {
    "round": lambda u, v: (u / 1.0) ** 2 + (v / 0.55) ** 2 <= 1.0,
    "pointed": lambda u, v: u.abs() + v.abs() / 0.45 <= 1.0,
    "notched": lambda u, v: ((u / 1.0) ** 2 + (v / 0.6) ** 2 <= 1.0) & ~((u - 1.0) ** 2 + (v / 0.8) ** 2 <= 0.16),
    "thin": lambda u, v: (u / 1.0) ** 2 + (v / 0.25) ** 2 <= 1.0,
}
FLOWER_NAMES = tuple(f"{kind}_{count}" for kind in PETALS for count in PETAL_COUNTS)


def render_flowers(labels: Tensor, size: int, generator: torch.Generator) -> Tensor:
    """Fine-grained flowers: the class is the petal shape and the petal count (4 x 5 = 20 classes); petal
    and heart colours, size, rotation and place vary, over clutter."""
    draws = Draws(generator)
    batch = labels.shape[0]
    labels = labels.to(draws.device)
    kind, count = labels // len(PETAL_COUNTS), torch.tensor(PETAL_COUNTS, device=draws.device)[labels % len(PETAL_COUNTS)]
    most = max(PETAL_COUNTS)
    image = backgrounds(draws, batch, size)
    radius = draws.uniform(0.24, 0.36, batch) * size
    centre = radius[:, None] + draws.uniform(0, 1, batch, 2) * (size - 2 * radius[:, None])
    start = draws.uniform(0, 2 * math.pi, batch)
    step = torch.arange(most, device=draws.device)[None] * (2 * math.pi / count[:, None])  # (B, P)
    angles = start[:, None] + step
    petal_radius = radius[:, None].expand(-1, most) * 0.5
    centres = centre[:, None] + petal_radius[..., None] * torch.stack([angles.cos(), angles.sin()], dim=2)
    alpha = part_coverage(list(PETALS.values()), kind[:, None].expand(-1, most), size, centres, petal_radius, angles)
    alpha = alpha * (torch.arange(most, device=draws.device)[None] < count[:, None])[..., None, None]
    image = over(image, alpha.amax(dim=1), fill(draws, image, size, stripes=False))
    heart = part_coverage([lambda u, v: u * u + v * v <= 1.0], torch.zeros(batch, 1, dtype=torch.long, device=draws.device), size,
                          centre[:, None], radius[:, None] * 0.22, torch.zeros(batch, 1, device=draws.device))
    image = over(image, heart[:, 0], fill(draws, image, size, stripes=False))
    return to_uint8(image)
