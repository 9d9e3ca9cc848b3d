"""micro-VTAB's structured tasks, as CLEVR, dSprites, smallNORB and KITTI pose them: counting, location,
orientation, distance on a ground plane, and occlusion order. The label is a property of the scene's
layout, never of what the objects are or what colour they have.

Each renderer maps labels (B,) and a generator to images uint8 (B, 3, S, S).
"""

from __future__ import annotations

import math
from itertools import permutations

import torch
from torch import Tensor

from sttool.data.synthetic.micro_vtab.paint import over, part_coverage, smooth_backdrop, to_uint8
from sttool.data.synthetic.render import Draws, _pixel_centres, object_colours
from sttool.data.synthetic.shapes import PRETRAIN_SHAPES, SHAPES, Inside

SPRITES: list[Inside] = list(SHAPES.values()) + list(PRETRAIN_SHAPES.values())
MAX_COUNT = 8
COUNT_NAMES = tuple(str(n) for n in range(1, MAX_COUNT + 1))
GRID = 4  # counting places objects in distinct cells of a jittered GRID x GRID layout, so none overlap


def _backdrop(draws: Draws, batch: int, size: int) -> Tensor:
    return smooth_backdrop(draws, batch, size) + draws.normal(0.03, batch, 1, size, size)


def _paint_parts(draws: Draws, image: Tensor, alpha: Tensor) -> Tensor:
    """Composite parts ``alpha`` (B, P, S, S) in order, each in its own colour apart from the backdrop."""
    for p in range(alpha.shape[1]):
        colour = object_colours(draws, image)[:, :, None, None].expand_as(image)
        image = over(image, alpha[:, p], colour)
    return image


def render_count(labels: Tensor, size: int, generator: torch.Generator) -> Tensor:
    """``labels[b] + 1`` objects (1 to 8) of random kinds, sizes and colours, in distinct cells."""
    draws = Draws(generator)
    batch = labels.shape[0]
    count = labels.to(draws.device) + 1
    cells = torch.rand(batch, GRID * GRID, generator=draws.generator, device=draws.device).argsort(dim=1)[:, :MAX_COUNT]
    cell = size / GRID
    centres = torch.stack([(cells % GRID).float(), (cells // GRID).float()], dim=2) * cell + cell / 2
    radii = draws.uniform(0.28, 0.45, batch, MAX_COUNT) * cell
    centres = centres + draws.uniform(-1, 1, batch, MAX_COUNT, 2) * (cell / 2 - radii[..., None]).clamp(min=0)
    alpha = part_coverage(SPRITES, draws.integers(0, len(SPRITES) - 1, batch, MAX_COUNT), size, centres, radii,
                          draws.uniform(0, 2 * math.pi, batch, MAX_COUNT))
    alpha = alpha * (torch.arange(MAX_COUNT, device=draws.device)[None] < count[:, None])[..., None, None]
    return to_uint8(_paint_parts(draws, _backdrop(draws, batch, size), alpha))


LOCATION_BINS = 4  # per axis
LOCATION_NAMES = tuple(f"x{i}_y{j}" for j in range(LOCATION_BINS) for i in range(LOCATION_BINS))


def render_location(labels: Tensor, size: int, generator: torch.Generator) -> Tensor:
    """One small sprite; the class is its cell in a 4 x 4 grid (x bin + 4 * y bin), as dSprites' location
    tasks bin positions. Two distractor strokes cross the frame."""
    draws = Draws(generator)
    batch = labels.shape[0]
    labels = labels.to(draws.device)
    cell = size / LOCATION_BINS
    corner = torch.stack([(labels % LOCATION_BINS).float(), (labels // LOCATION_BINS).float()], dim=1) * cell
    centre = corner + draws.uniform(0, 1, batch, 2) * cell  # anywhere in the cell: the sprite may straddle its edges
    radius = draws.uniform(4.0, 6.0, batch) * size / 64
    alpha = part_coverage(SPRITES, draws.integers(0, len(SPRITES) - 1, batch, 1), size, centre[:, None], radius[:, None],
                          draws.uniform(0, 2 * math.pi, batch, 1))
    image = _backdrop(draws, batch, size)
    x, y = _pixel_centres(size, draws.device)
    for _ in range(2):
        start, end = draws.uniform(0, size, batch, 2), draws.uniform(0, size, batch, 2)
        d = end - start
        t = (((x - start[:, 0, None, None]) * d[:, 0, None, None] + (y - start[:, 1, None, None]) * d[:, 1, None, None])
             / (d * d).sum(1).clamp(min=1e-6)[:, None, None]).clamp(0, 1)
        near = torch.hypot(x - start[:, 0, None, None] - t * d[:, 0, None, None], y - start[:, 1, None, None] - t * d[:, 1, None, None]) < 0.7
        image = over(image, near.float(), object_colours(draws, image)[:, :, None, None].expand_as(image))
    return to_uint8(_paint_parts(draws, image, alpha))


ORIENTATION_BINS = 16
ORIENTATION_NAMES = tuple(f"{round(k * 360 / ORIENTATION_BINS)}deg" for k in range(ORIENTATION_BINS))
POINTERS: list[Inside] = [SHAPES["arrow"], PRETRAIN_SHAPES["teardrop"], PRETRAIN_SHAPES["t_shape"], SHAPES["heart"],
                          PRETRAIN_SHAPES["semicircle"], PRETRAIN_SHAPES["chevron"]]


def render_orientation(labels: Tensor, size: int, generator: torch.Generator) -> Tensor:
    """One sprite with a clear heading (arrow, teardrop, T, heart, half disc, chevron); the class is its
    rotation in 16 bins of 22.5 degrees, as dSprites' orientation task."""
    draws = Draws(generator)
    batch = labels.shape[0]
    width = 2 * math.pi / ORIENTATION_BINS
    angle = (labels.to(draws.device).float() + draws.uniform(0, 1, batch)) * width
    radius = draws.uniform(0.22, 0.36, batch) * size
    centre = radius[:, None] + draws.uniform(0, 1, batch, 2) * (size - 2 * radius[:, None])
    alpha = part_coverage(POINTERS, draws.integers(0, len(POINTERS) - 1, batch, 1), size, centre[:, None], radius[:, None], angle[:, None])
    return to_uint8(_paint_parts(draws, _backdrop(draws, batch, size), alpha))


DEPTH_EDGES = (1.0, 1.8, 2.8, 4.5, 8.0)  # nearest object's distance bins (in units of the camera height)
DISTANCE_NAMES = ("near", "mid", "far", "very_far")
MAX_CARS = 3
CAR: Inside = lambda u, v: ((u.abs() <= 1.0) & (v >= -0.45) & (v <= 0.2)) | ((u.abs() <= 0.55) & (v >= -0.85) & (v <= -0.45))  # noqa: E731


def render_distance(labels: Tensor, size: int, generator: torch.Generator) -> Tensor:
    """A ground plane below a horizon with one to three cars; the class is the distance of the nearest
    car in four bins (as VTAB's KITTI-distance), read from where it stands and how large it looks (the
    cars' own sizes vary by +-20%, so size alone is not enough)."""
    draws = Draws(generator)
    batch = labels.shape[0]
    labels = labels.to(draws.device)
    edges = torch.tensor(DEPTH_EDGES, device=draws.device)
    nearest = edges[labels] + draws.uniform(0, 1, batch) * (edges[labels + 1] - edges[labels])
    others = nearest[:, None] + draws.uniform(0.3, 6.0, batch, MAX_CARS - 1)
    depth = torch.cat([nearest[:, None], others], dim=1)  # (B, C)
    present = torch.cat([torch.ones(batch, 1, dtype=torch.bool, device=draws.device),
                         torch.arange(1, MAX_CARS, device=draws.device)[None] < draws.integers(1, MAX_CARS, batch, 1)], dim=1)
    horizon = draws.uniform(0.3, 0.42, batch) * size
    focal = 0.5 * size
    ground_y = horizon[:, None] + focal * 0.9 / depth  # where a car at that distance touches the ground
    half = (focal * 0.6 / depth) * draws.uniform(0.8, 1.2, batch, MAX_CARS)
    lateral = draws.uniform(-1.2, 1.2, batch, MAX_CARS)
    centres = torch.stack([size / 2 + lateral * focal / depth, ground_y - 0.2 * half], dim=2)
    x, y = _pixel_centres(size, draws.device)
    sky = smooth_backdrop(draws, batch, size) * 0.4 + torch.tensor([0.5, 0.6, 0.8], device=draws.device)[None, :, None, None] * 0.6
    road = (0.3 + 0.3 * draws.uniform(0, 1, batch, 1, 1, 1)) + draws.normal(0.04, batch, 1, size, size)
    image = torch.where((y[None, None] > horizon[:, None, None, None]), road.expand(-1, 3, -1, -1), sky)
    order = depth.masked_fill(~present, float("inf")).argsort(dim=1, descending=True)  # far to near
    rows = torch.arange(batch, device=draws.device)[:, None]
    alpha = part_coverage([CAR], torch.zeros(batch, MAX_CARS, dtype=torch.long, device=draws.device), size,
                          centres[rows, order], half[rows, order], torch.zeros(batch, MAX_CARS, device=draws.device))
    alpha = alpha * present[rows, order][..., None, None]
    return to_uint8(_paint_parts(draws, image, alpha))


OCCLUDERS: list[Inside] = [SHAPES["circle"], SHAPES["square"], SHAPES["triangle"]]
ORDERS = list(permutations(range(3)))  # back to front
OCCLUSION_NAMES = tuple("<".join(("circle", "square", "triangle")[k] for k in order) for order in ORDERS)


def render_occlusion(labels: Tensor, size: int, generator: torch.Generator) -> Tensor:
    """A circle, a square and a triangle that overlap; the class is their depth order (six orders, back to
    front). Sizes, colours, rotation and the layout of the cluster vary."""
    draws = Draws(generator)
    batch = labels.shape[0]
    order = torch.tensor(ORDERS, device=draws.device)[labels.to(draws.device)]  # (B, 3) kinds, back to front
    radius = draws.uniform(0.16, 0.24, batch, 3) * size
    cluster = size / 2 + draws.uniform(-0.12, 0.12, batch, 1, 2) * size
    spread = draws.uniform(0, 2 * math.pi, batch, 1) + torch.arange(3, device=draws.device)[None] * (2 * math.pi / 3)
    reach = draws.uniform(0.08, 0.15, batch, 3) * size  # close enough that every pair overlaps
    centres = cluster + reach[..., None] * torch.stack([spread.cos(), spread.sin()], dim=2)
    alpha = part_coverage(OCCLUDERS, order, size, centres, radius, draws.uniform(0, 2 * math.pi, batch, 3))
    return to_uint8(_paint_parts(draws, _backdrop(draws, batch, size), alpha))
