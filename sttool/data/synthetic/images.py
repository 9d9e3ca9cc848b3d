"""The synthetic image set: one shape on a cluttered background per image, with its foreground mask.

Layout: ``ROOT/images/{train,val,test}/<class>/<nnnnn>.png`` and the masks (0/255, one channel) at
``ROOT/masks/...`` under the same names; ``ROOT/images/info.json`` records the options and statistics.
Every image comes from its own seed (seed, task, split, class, index), so a set is the same bytes for
the same options however it is generated.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from sttool.data.synthetic.canvas import background, composite, object_colour, shape_alpha
from sttool.data.synthetic.shapes import TASKS, Mask

SPLITS = ("train", "val", "test")
TASK_IDS = {"shapes": 0, "pretrain": 1, "motion": 2}
OBJECT_RADIUS = (0.26, 0.40)  # share of the image side; keeps the object a minority of the pixels


@dataclass
class SetReport:
    """Where a synthetic set went and what it holds."""

    root: str
    task: str
    classes: list[str]
    counts: dict[str, int]
    seconds: float
    mean_object_area: float | None = None  # share of pixels under the object (images)
    options: dict[str, object] = field(default_factory=dict)


def write_info(folder: Path, report: SetReport) -> None:
    """``info.json``: what the set holds, without the machine-specific root or timing (same bytes per options)."""
    info = {k: v for k, v in asdict(report).items() if k not in ("root", "seconds")}
    (folder / "info.json").write_text(json.dumps(info, indent=2) + "\n")


def sample_rng(seed: int, task: str, split: str, label: int, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, TASK_IDS[task], SPLITS.index(split), label, index])


def render_image(rng: np.random.Generator, inside: Callable[[np.ndarray, np.ndarray], Mask], size: int) -> tuple[np.ndarray, np.ndarray]:
    """A uint8 (S, S, 3) image with one shape of kind ``inside`` and its bool (S, S) mask."""
    backdrop = background(rng, size)
    radius = rng.uniform(*OBJECT_RADIUS) * size
    centre = rng.uniform(radius, size - radius, 2)
    alpha = shape_alpha(inside, size, (centre[0], centre[1]), radius, rng.uniform(0.0, 2 * np.pi))
    return composite(backdrop, alpha, object_colour(rng, backdrop)), alpha >= 0.5


def write_image_set(
    out: Path,
    task: str,
    seed: int,
    image_size: int,
    per_class: tuple[int, int, int],
    advance: Callable[[int], None] | None = None,
) -> SetReport:
    """Render and write the image set of ``task`` (shapes or pretrain); ``advance(n)`` reports progress."""
    start = time.perf_counter()
    kinds = TASKS[task]
    areas: list[float] = []
    counts = {}
    for split, count in zip(SPLITS, per_class, strict=True):
        counts[split] = count * len(kinds)
        for label, (name, inside) in enumerate(kinds.items()):
            for folder in ("images", "masks"):
                (out / folder / split / name).mkdir(parents=True, exist_ok=True)
            for index in range(count):
                image, mask = render_image(sample_rng(seed, task, split, label, index), inside, image_size)
                Image.fromarray(image).save(out / "images" / split / name / f"{index:05d}.png")
                Image.fromarray(mask.astype(np.uint8) * 255).save(out / "masks" / split / name / f"{index:05d}.png")
                areas.append(float(mask.mean()))
            if advance is not None:
                advance(count)
    options = {"seed": seed, "image_size": image_size, "per_class": dict(zip(SPLITS, per_class, strict=True))}
    report = SetReport(str(out / "images"), task, list(kinds), counts, 0.0, float(np.mean(areas)) if areas else None, options)
    report.seconds = time.perf_counter() - start
    write_info(out / "images", report)
    return report
