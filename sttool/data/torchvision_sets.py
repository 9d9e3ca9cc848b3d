"""CIFAR-100, SVHN and Food-101 through torchvision, from a local root; downloads only when asked.

torchvision checks the MD5 of every CIFAR and SVHN file against the official release before reading
it, so only those known files are ever unpickled (CIFAR's python format is pickle).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sttool.data.samples import ListEntry
from sttool.errors import SttoolError

SPLITS = {"cifar100": ("train", "test"), "svhn": ("train", "test", "extra"), "food101": ("train", "test")}
EXPECTED = {"cifar100": "cifar-100-python/", "svhn": "train_32x32.mat, test_32x32.mat", "food101": "food-101/images, food-101/meta"}


def torchvision_split(dataset: str, root: str, split: str, download: bool) -> tuple[list[ListEntry], list[str], np.ndarray | None]:
    """(entries, class names, images): images (N, H, W, 3) uint8 for in-memory sets, None for Food-101's files."""
    if split not in SPLITS[dataset]:
        raise SttoolError(f"data: {dataset} has splits {', '.join(SPLITS[dataset])}, not '{split}'")
    from torchvision import datasets

    try:
        if dataset == "cifar100":
            data = datasets.CIFAR100(root, train=split == "train", download=download)
            images, labels, classes = data.data, data.targets, list(data.classes)  # (N, 32, 32, 3)
        elif dataset == "svhn":
            data = datasets.SVHN(root, split=split, download=download)
            images, labels, classes = data.data.transpose(0, 2, 3, 1), data.labels, [str(i) for i in range(10)]  # (N, 3, H, W) -> (N, H, W, 3)
        else:
            data = datasets.Food101(root, split=split, download=download)
            entries = [ListEntry(str(path), int(label)) for path, label in zip(data._image_files, data._labels, strict=True)]
            return entries, list(data.classes), None
    except RuntimeError:
        raise SttoolError(
            f"data: {dataset} not found or incomplete under {Path(root)} (expected {EXPECTED[dataset]}); "
            "set data.download=true to download it there"
        ) from None
    except ModuleNotFoundError as err:
        raise SttoolError(f"data: torchvision needs {err.name} to read {dataset} (pip install {err.name})") from None
    where = f"{root}/{dataset}-{split}"
    entries = [ListEntry(f"{where}#{row}", int(label), row=row) for row, label in enumerate(labels)]
    return entries, classes, np.ascontiguousarray(images)
