"""micro-VTAB's specialized-like tasks: material textures, cell morphology in the centre of a tissue
patch (as Patch Camelyon labels the centre), and aerial land-use tiles.

Each renderer maps labels (B,) and a generator to images uint8 (B, 3, S, S).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from sttool.data.synthetic.micro_vtab.paint import over, part_coverage, to_uint8
from sttool.data.synthetic.render import Draws, _pixel_centres
from sttool.data.synthetic.shapes import Inside

MATERIAL_NAMES = ("stripes", "waves", "checks", "lattice_dots", "scattered_dots", "cracks", "marble", "rings", "weave", "bubbles")


def _noise(draws: Draws, batch: int, size: int, cells: int) -> Tensor:
    """(B, S, S) smooth noise in [0, 1] of about ``cells`` features per side."""
    return F.interpolate(draws.uniform(0, 1, batch, 1, cells, cells), size=(size, size), mode="bicubic", align_corners=True).squeeze(1)


def _nearest_two(points: Tensor, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """Distances (B, S, S) from every pixel to its nearest and second nearest of ``points`` (B, K, 2)."""
    d = torch.hypot(x[None, None] - points[:, :, 0, None, None], y[None, None] - points[:, :, 1, None, None])  # (B, K, S, S)
    two = d.topk(2, dim=1, largest=False).values
    return two[:, 0], two[:, 1]


def _pattern(kind: int, draws: Draws, batch: int, size: int) -> Tensor:
    """(B, S, S) in [0, 1]: the pattern of material ``kind``, at a random scale, orientation and phase."""
    x, y = _pixel_centres(size, draws.device)
    scale = size / 64
    angle = draws.uniform(0, math.pi, batch, 1, 1)
    u, v = x * angle.cos() + y * angle.sin(), -x * angle.sin() + y * angle.cos()
    period = draws.uniform(5, 10, batch, 1, 1) * scale
    if kind == 0:
        return (torch.sin(2 * math.pi * u / period) > draws.uniform(-0.5, 0.5, batch, 1, 1)).float()
    if kind == 1:
        bend = draws.uniform(2, 5, batch, 1, 1) * scale * torch.sin(2 * math.pi * v / (period * draws.uniform(2, 4, batch, 1, 1)))
        return (torch.sin(2 * math.pi * (u + bend) / period) > 0).float()
    if kind == 2:
        return ((torch.floor(u / period) + torch.floor(v / period)) % 2).float()
    if kind == 3:
        du, dv = (u / period) % 1 - 0.5, (v / period) % 1 - 0.5
        return (torch.hypot(du, dv) < draws.uniform(0.18, 0.32, batch, 1, 1)).float()
    if kind == 4:
        count = int(size * size / 40)
        points = draws.uniform(0, size, batch, count, 2)
        nearest, _ = _nearest_two(points, x, y)
        return (nearest < draws.uniform(1.2, 2.2, batch, 1, 1) * scale).float()
    if kind == 5:
        points = draws.uniform(0, size, batch, 14, 2)
        nearest, second = _nearest_two(points, x, y)
        return (second - nearest < draws.uniform(0.8, 1.6, batch, 1, 1) * scale).float()
    if kind == 6:
        turbulence = _noise(draws, batch, size, 5) * draws.uniform(10, 20, batch, 1, 1) * scale
        return 0.5 + 0.5 * torch.sin(2 * math.pi * (u + turbulence) / (period * 2))
    if kind == 7:
        centre = draws.uniform(-0.5, 1.5, batch, 2, 1, 1) * size
        radius = torch.hypot(x - centre[:, 0], y - centre[:, 1]) + _noise(draws, batch, size, 4) * 4 * scale
        return 0.5 + 0.5 * torch.sin(2 * math.pi * radius / (period * 0.7))
    if kind == 8:
        cell = period * 1.5
        across = ((torch.floor(u / cell) + torch.floor(v / cell)) % 2) == 0
        threads = torch.where(across, torch.sin(2 * math.pi * u * 3 / cell), torch.sin(2 * math.pi * v * 3 / cell))
        return (threads > 0).float()
    count = 12
    points = draws.uniform(0, size, batch, count, 2)
    radii = draws.uniform(3, 9, batch, count, 1, 1) * scale
    d = torch.hypot(x[None, None] - points[:, :, 0, None, None], y[None, None] - points[:, :, 1, None, None])  # (B, K, S, S)
    return ((d - radii).abs() < 0.9 * scale).any(dim=1).float()


def render_materials(labels: Tensor, size: int, generator: torch.Generator) -> Tensor:
    """Full-frame textures: the class is the pattern (regular or irregular dots, straight or bent stripes,
    cracks, marble, wood rings, weave, bubbles); both colours, the scale, orientation and lighting vary."""
    draws = Draws(generator)
    batch = labels.shape[0]
    labels = labels.to(draws.device)
    pattern = torch.zeros(batch, size, size, device=draws.device)
    for kind in labels.unique().tolist():
        rows = (labels == kind).nonzero().squeeze(1)
        pattern[rows] = _pattern(kind, draws, len(rows), size)
    dark, light = draws.uniform(0, 0.6, batch, 3, 1, 1), draws.uniform(0.4, 1, batch, 3, 1, 1)
    image = dark + (light - dark) * pattern.unsqueeze(1)
    image = image * (0.75 + 0.5 * _noise(draws, batch, size, 3)).unsqueeze(1) + draws.normal(0.03, batch, 1, size, size)
    return to_uint8(image)


CELL_NAMES = ("round", "spindle", "large_irregular", "dividing")
NUCLEI: list[Inside] = [
    lambda u, v: u * u + v * v <= 1.0,
    lambda u, v: (u / 1.0) ** 2 + (v / 0.32) ** 2 <= 1.0,
    lambda u, v: torch.hypot(u, v) <= 0.78 + 0.22 * torch.sin(3 * torch.atan2(v, u)) * torch.cos(2 * torch.atan2(v, u) + 1.0),
    lambda u, v: ((u - 0.5) ** 2 + v * v <= 0.2) | ((u + 0.5) ** 2 + v * v <= 0.2),
]
NUCLEUS_RADIUS = (3.0, 5.5, 6.0, 5.0)  # pixels at 64 px
CENTRE_CELLS, OTHER_CELLS = (3, 5), 22


def render_cells(labels: Tensor, size: int, generator: torch.Generator) -> Tensor:
    """Stained tissue: the class is the morphology of the nuclei inside the central 32 x 32 pixels (round,
    spindle, large irregular, dividing pairs); the nuclei around it are of every kind, so the frame as a
    whole does not tell."""
    draws = Draws(generator)
    batch = labels.shape[0]
    labels = labels.to(draws.device)
    scale = size / 64
    tissue = torch.stack([draws.uniform(0.8, 0.95, batch), draws.uniform(0.55, 0.75, batch), draws.uniform(0.7, 0.9, batch)], 1)
    image = tissue[:, :, None, None] * (0.85 + 0.3 * _noise(draws, batch, size, 8)).unsqueeze(1)
    central = draws.integers(*CENTRE_CELLS, batch)
    cells = CENTRE_CELLS[1] + OTHER_CELLS
    slot = torch.arange(cells, device=draws.device)[None]
    in_centre = slot < CENTRE_CELLS[1]
    kinds = torch.where(in_centre, labels[:, None], draws.integers(0, len(NUCLEI) - 1, batch, cells))
    centre_xy = size / 2 + draws.uniform(-0.22, 0.22, batch, cells, 2) * size
    along, across = draws.uniform(0, 1, batch, cells) * size, draws.uniform(0, 0.2, batch, cells) * size
    side = draws.integers(0, 3, batch, cells)  # the border band a peripheral nucleus lies in: top, bottom, left, right
    across = torch.where(side % 2 == 1, size - across, across)
    border = torch.where((side < 2)[..., None], torch.stack([along, across], 2), torch.stack([across, along], 2))
    centres = torch.where(in_centre[..., None], centre_xy, border)
    radii = torch.tensor(NUCLEUS_RADIUS, device=draws.device)[kinds] * scale * draws.uniform(0.85, 1.15, batch, cells)
    alpha = part_coverage(NUCLEI, kinds, size, centres, radii, draws.uniform(0, 2 * math.pi, batch, cells))
    present = torch.where(in_centre, slot < central[:, None], torch.ones_like(in_centre))
    alpha = (alpha * present[..., None, None]).amax(dim=1)
    stain = torch.stack([draws.uniform(0.25, 0.45, batch), draws.uniform(0.1, 0.25, batch), draws.uniform(0.4, 0.6, batch)], 1)
    image = over(image, alpha, stain[:, :, None, None].expand(-1, -1, size, size))
    image = F.avg_pool2d(image, 3, 1, 1, count_include_pad=False) * 0.5 + image * 0.5 + draws.normal(0.02, batch, 1, size, size)
    return to_uint8(image)


AERIAL_NAMES = ("forest", "farmland", "water", "residential", "industrial", "river", "highway", "meadow")


def _jitter(draws: Draws, base: tuple[float, float, float], batch: int, spread: float = 0.12) -> Tensor:
    """(B, 3, 1, 1) colours around ``base``."""
    return (torch.tensor(base, device=draws.device)[None] + draws.normal(spread, batch, 3)).clamp(0, 1)[:, :, None, None]


def render_aerial(labels: Tensor, size: int, generator: torch.Generator) -> Tensor:
    """Top-down land-use tiles: forest, farmland parcels, water, residential blocks, industrial halls, a
    river, a highway and meadow, each with jittered colours, scale and orientation."""
    draws = Draws(generator)
    batch = labels.shape[0]
    labels = labels.to(draws.device)
    x, y = _pixel_centres(size, draws.device)
    scale = size / 64
    angle = draws.uniform(0, math.pi, batch, 1, 1)
    u, v = x * angle.cos() + y * angle.sin(), -x * angle.sin() + y * angle.cos()  # (B, S, S)
    ground = _jitter(draws, (0.45, 0.55, 0.3), batch) * (0.85 + 0.3 * _noise(draws, batch, size, 6)).unsqueeze(1)
    image = ground.clone()
    kind = labels[:, None, None]

    canopy = (_noise(draws, batch, size, 16) > 0.45).float()
    forest = _jitter(draws, (0.12, 0.32, 0.12), batch) * (0.7 + 0.6 * _noise(draws, batch, size, 20)).unsqueeze(1)
    image = torch.where((kind == 0).unsqueeze(1), forest * (0.8 + 0.2 * canopy.unsqueeze(1)), image)

    width = draws.uniform(12, 24, batch, 1, 1) * scale
    parcel = torch.floor(u / width) * 7 + torch.floor(v / (width * 1.3))
    tone = torch.sin(parcel * 12.9898 + draws.uniform(0, 100, batch, 1, 1)) * 0.5 + 0.5  # a tone per parcel
    furrows = 0.9 + 0.1 * torch.sin(2 * math.pi * torch.where(parcel % 2 == 0, u, v) / (2.5 * scale))
    crop = _jitter(draws, (0.6, 0.55, 0.3), batch) * (0.6 + 0.6 * tone).unsqueeze(1) * furrows.unsqueeze(1)
    image = torch.where((kind == 1).unsqueeze(1), crop, image)

    water = _jitter(draws, (0.15, 0.3, 0.5), batch, 0.08) * (0.9 + 0.1 * torch.sin(2 * math.pi * (u + 3 * _noise(draws, batch, size, 4)) / (3 * scale))).unsqueeze(1)
    image = torch.where((kind == 2).unsqueeze(1), water, image)

    block = draws.uniform(7, 10, batch, 1, 1) * scale
    cu, cv = (u / block) % 1, (v / block) % 1
    roof = (cu > 0.2) & (cu < 0.8) & (cv > 0.25) & (cv < 0.75)
    street = (cu < 0.08) | (cv < 0.08)
    houses = torch.where(roof.unsqueeze(1), _jitter(draws, (0.6, 0.3, 0.25), batch), torch.where(street.unsqueeze(1), _jitter(draws, (0.5, 0.5, 0.5), batch, 0.05), ground))
    image = torch.where((kind == 3).unsqueeze(1), houses, image)

    hall = draws.uniform(18, 28, batch, 1, 1) * scale
    hu, hv = (u / hall) % 1, (v / (hall * 0.7)) % 1
    halls = (hu > 0.1) & (hu < 0.9) & (hv > 0.15) & (hv < 0.85)
    yard = _jitter(draws, (0.55, 0.55, 0.52), batch, 0.05)
    industry = torch.where(halls.unsqueeze(1), _jitter(draws, (0.8, 0.8, 0.82), batch, 0.06) * (0.95 + 0.05 * torch.sin(v * 2)).unsqueeze(1), yard)
    image = torch.where((kind == 4).unsqueeze(1), industry, image)

    offset = draws.uniform(0.3, 0.7, batch, 1, 1) * size
    meander = draws.uniform(4, 10, batch, 1, 1) * scale * torch.sin(2 * math.pi * u / (draws.uniform(25, 50, batch, 1, 1) * scale))
    band = (v - offset - meander).abs() < draws.uniform(3, 6, batch, 1, 1) * scale
    river = torch.where(band.unsqueeze(1), water, ground)
    image = torch.where((kind == 5).unsqueeze(1), river, image)

    road = (v - offset).abs() < 4 * scale
    dashes = ((v - offset).abs() < 0.6 * scale) & ((u / (4 * scale)) % 1 < 0.5)
    highway = torch.where(dashes.unsqueeze(1), torch.ones_like(ground) * 0.9, torch.where(road.unsqueeze(1), _jitter(draws, (0.35, 0.35, 0.37), batch, 0.04), ground))
    image = torch.where((kind == 6).unsqueeze(1), highway, image)

    bushes = (_noise(draws, batch, size, 20) > 0.8).unsqueeze(1)
    meadow = torch.where(bushes, _jitter(draws, (0.15, 0.35, 0.15), batch), _jitter(draws, (0.55, 0.7, 0.35), batch) * (0.9 + 0.2 * _noise(draws, batch, size, 5)).unsqueeze(1))
    image = torch.where((kind == 7).unsqueeze(1), meadow, image)
    return to_uint8(image + draws.normal(0.025, batch, 1, size, size))
