"""micro-VTAB: a miniature VTAB-1K that a CPU trains in minutes, in VTAB-1K's folder layout.

Eleven generated tasks in VTAB's three groups, 64 px, with train800 / val200 / train800val200 / test
lists as the PEFT papers' processed VTAB-1K has them, so ``sttool bench`` runs it as it runs the real
one. They were chosen so that frozen features are not enough: classes with several families, labels
that sit in one region of the frame, and structured labels (count, place, heading, distance, depth
order) that a classification backbone's [CLS] token does not keep.

The same seed gives the same bytes: each chunk of a split is rendered from its own generator, seeded by
(seed, task, split, chunk), and its labels are balanced over the classes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from sttool.data.synthetic.micro_vtab import natural, specialized, structured
from sttool.data.vtab import write_vtab_task
from sttool.errors import SttoolError
from sttool.progress import SILENT, Progress

Render = Callable[[Tensor, int, torch.Generator], Tensor]


@dataclass(frozen=True)
class MicroTask:
    """One micro-VTAB task: its VTAB group, its class names (label order) and its renderer."""

    name: str
    group: str
    class_names: tuple[str, ...]
    render: Render
    like: str  # the VTAB-1K tasks it stands for


MICRO_VTAB: dict[str, MicroTask] = {task.name: task for task in (
    MicroTask("objects", "natural", natural.OBJECT_NAMES, natural.render_objects, "Caltech101, CIFAR-100"),
    MicroTask("digits", "natural", natural.DIGIT_NAMES, natural.render_digits, "SVHN"),
    MicroTask("flowers", "natural", natural.FLOWER_NAMES, natural.render_flowers, "Flowers102, Pets"),
    MicroTask("materials", "specialized", specialized.MATERIAL_NAMES, specialized.render_materials, "DTD, EuroSAT textures"),
    MicroTask("cells", "specialized", specialized.CELL_NAMES, specialized.render_cells, "Patch Camelyon"),
    MicroTask("aerial", "specialized", specialized.AERIAL_NAMES, specialized.render_aerial, "EuroSAT, Resisc45"),
    MicroTask("count", "structured", structured.COUNT_NAMES, structured.render_count, "CLEVR-count"),
    MicroTask("location", "structured", structured.LOCATION_NAMES, structured.render_location, "dSprites-location"),
    MicroTask("orientation", "structured", structured.ORIENTATION_NAMES, structured.render_orientation, "dSprites-orientation, smallNORB-azimuth"),
    MicroTask("distance", "structured", structured.DISTANCE_NAMES, structured.render_distance, "KITTI-distance, CLEVR-distance"),
    MicroTask("occlusion", "structured", structured.OCCLUSION_NAMES, structured.render_occlusion, "CLEVR (depth order)"),
)}
GROUPS = ("natural", "specialized", "structured")
SPLIT_IDS = {"train800": 0, "val200": 1, "test": 2}
DEFAULT_COUNTS = {"train800": 800, "val200": 200, "test": 500}
CHUNK = 100  # images rendered per generator (part of what fixes the bytes)
IMAGE_SIZE = 64


def chunk_images(task: MicroTask, seed: int, split: str, chunk: int, size: int = IMAGE_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """Images (CHUNK, S, S, 3) uint8 and labels (CHUNK,) of one chunk, balanced over the classes."""
    index = list(MICRO_VTAB).index(task.name)
    mixed = np.random.SeedSequence([seed, 0x7AB, index, SPLIT_IDS[split], chunk]).generate_state(1, np.uint64)[0]
    generator = torch.Generator().manual_seed(int(mixed >> 1))
    labels = (torch.arange(CHUNK) + chunk * CHUNK) % len(task.class_names)
    labels = labels[torch.randperm(CHUNK, generator=generator)]
    images = task.render(labels, size, generator)  # (B, 3, S, S)
    return images.permute(0, 2, 3, 1).numpy(), labels.numpy()


def _render(task: MicroTask, seed: int, split: str, chunk: int) -> tuple[np.ndarray, np.ndarray]:
    return chunk_images(task, seed, split, chunk)


def make_micro_vtab(out: Path, seed: int = 0, tasks: list[str] | None = None, counts: dict[str, int] | None = None,
                    progress: Progress = SILENT) -> dict[str, dict[str, int]]:
    """Write the tasks (all, or ``tasks``) under ``out``/<task>/ in the VTAB-1K layout; returns the list sizes."""
    names = tasks or list(MICRO_VTAB)
    unknown = [name for name in names if name not in MICRO_VTAB]
    if unknown:
        raise SttoolError(f"micro-VTAB task '{unknown[0]}' is not one of {', '.join(MICRO_VTAB)}")
    sizes = dict(counts or DEFAULT_COUNTS)
    written = {}
    for name in names:
        task = MICRO_VTAB[name]
        advance = progress.task(name, sum(sizes.values())).advance
        written[name] = write_vtab_task(out / name, task.class_names, sizes, partial(_render, task, seed), advance)
    return written
