"""The synthetic image set: one shape on a cluttered background per image, with its foreground mask.

Layout: ``ROOT/images/{train,val,test}/<class>/<nnnnn>.png`` and the masks (0/255, one channel) at
``ROOT/masks/...`` under the same names; ``ROOT/images/info.json`` records the options and statistics.
Each run of ``CHUNK`` images of one class in one split is rendered on the CPU from its own seed (seed,
task, split, class, chunk), so a set is the same bytes for the same options however it is generated.

``mask_path`` and ``load_mask`` find and read an image's mask, to score kept tokens against ground truth.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from sttool.data.samples import READ_TIMEOUT, BadSample, read_bytes
from sttool.data.synthetic.tasks import IMAGE_TASKS

SPLITS = ("train", "val", "test")
MOTION_SEED_ID = 2  # the motion videos' id among the tasks' seed ids
CHUNK = 50  # images rendered per batch (part of what fixes the bytes)


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


def chunk_generator(seed: int, task: str, split: str, label: int, chunk: int) -> torch.Generator:
    """The CPU generator of one chunk of one class in one split."""
    task_id = MOTION_SEED_ID if task == "motion" else IMAGE_TASKS[task].seed_id
    mixed = np.random.SeedSequence([seed, task_id, SPLITS.index(split), label, chunk]).generate_state(1, np.uint64)[0]
    return torch.Generator().manual_seed(int(mixed >> 1))


def write_image_set(
    out: Path,
    task: str,
    seed: int,
    image_size: int,
    per_class: tuple[int, int, int],
    advance: Callable[[int], None] | None = None,
) -> SetReport:
    """Render and write the image set of ``task`` (shapes, pretrain or formula); ``advance(n)`` reports progress."""
    start = time.perf_counter()
    row = IMAGE_TASKS[task]
    areas: list[float] = []
    counts = {}
    for split, count in zip(SPLITS, per_class, strict=True):
        counts[split] = count * len(row.names)
        for label, name in enumerate(row.names):
            for folder in ("images", "masks"):
                (out / folder / split / name).mkdir(parents=True, exist_ok=True)
            for first in range(0, count, CHUNK):
                size = min(CHUNK, count - first)
                labels = torch.full((size,), label)
                images, masks = row.render(labels, image_size, chunk_generator(seed, task, split, label, first // CHUNK))
                for offset, (image, mask) in enumerate(zip(images.permute(0, 2, 3, 1).numpy(), masks.numpy(), strict=True)):
                    Image.fromarray(image).save(out / "images" / split / name / f"{first + offset:05d}.png")
                    Image.fromarray(mask.astype(np.uint8) * 255).save(out / "masks" / split / name / f"{first + offset:05d}.png")
                    areas.append(float(mask.mean()))
            if advance is not None:
                advance(count)
    options = {"seed": seed, "image_size": image_size, "per_class": dict(zip(SPLITS, per_class, strict=True))}
    report = SetReport(str(out / "images"), task, list(row.names), counts, 0.0, float(np.mean(areas)) if areas else None, options)
    report.seconds = time.perf_counter() - start
    write_info(out / "images", report)
    return report


def mask_path(image_path: str | Path) -> Path | None:
    """``ROOT/images/<split>/<class>/<n>.png`` -> ``ROOT/masks/<split>/<class>/<n>.png`` if that file exists."""
    path = Path(image_path)
    parts = path.parts
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] == "images":
            candidate = Path(*parts[:i], "masks", *parts[i + 1 :])
            return candidate if candidate.is_file() else None
    return None


def load_mask(image_path: str | Path, timeout: float = READ_TIMEOUT) -> np.ndarray | None:
    """The bool (H, W) foreground mask of an image, or None when it has none; an unreadable mask file
    raises BadSample."""
    path = mask_path(image_path)
    if path is None:
        return None
    try:
        with Image.open(io.BytesIO(read_bytes(path, timeout))) as mask:
            return np.asarray(mask.convert("L")) >= 128
    except (OSError, SyntaxError, ValueError) as err:
        raise BadSample(f"mask {path}: {err}") from None
