"""Which named split each of train/val/test means for a dataset, and a val split carved from train."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np

from sttool.data.config import NO_SPLIT, DataConfig
from sttool.errors import SttoolError

Split = Literal["train", "val", "test"]
SPLITS: tuple[Split, ...] = ("train", "val", "test")

# (train, val, test) names; None: the dataset has no such split by default.
DEFAULT_SPLITS: dict[str, tuple[str, str | None, str | None]] = {
    "synthetic_images": ("train", "val", "test"),
    "synthetic_videos": ("train", "val", "test"),
    "imagefolder": ("train", "val", "test"),
    "video_list": ("train", "val", "test"),
    "vtab": ("train800", "val200", "test"),
    "cifar100": ("train", None, "test"),
    "svhn": ("train", None, "test"),
    "food101": ("train", None, "test"),
    "ssv2": ("train", None, "validation"),  # the official validation set is what papers report
    "k400": ("train", None, "val"),
}
VAL_SEED = 0  # the carved val split is the same in every run, whatever the training seed


def split_name(config: DataConfig, split: Split) -> str | None:
    """The named split behind ``split``, or None when the dataset has none (then val may be carved)."""
    if split not in SPLITS:
        raise SttoolError(f"split '{split}' is not one of {', '.join(SPLITS)}")
    explicit = getattr(config, f"{split}_split")
    if explicit is not None:
        return None if explicit == NO_SPLIT else explicit
    train, val, test = DEFAULT_SPLITS[config.dataset]
    if split == "val" and config.dataset == "vtab" and (config.train_split or train) != "train800":
        return None  # the val200 images are in train800val200: validating on them would be training data
    return {"train": train, "val": val, "test": test}[split]


def _default_exists(config: DataConfig, name: str) -> bool:
    root = Path(config.root)
    paths = {
        "synthetic_images": root / "images" / name,
        "synthetic_videos": root / "videos" / f"{name}.txt",
        "imagefolder": root / name,
        "video_list": root / f"{name}.txt",
        "vtab": root / (config.task or "") / f"{name}.txt",
    }
    return config.dataset not in paths or paths[config.dataset].exists()


def carves_val(config: DataConfig) -> bool:
    """Whether val is carved from train: asked for, and the dataset has no val split of its own."""
    return config.val_from_train > 0 and not _has_own_split(config, "val")


def _has_own_split(config: DataConfig, split: Split) -> bool:
    name = split_name(config, split)
    if name is None:
        return False
    return getattr(config, f"{split}_split") is not None or _default_exists(config, name)


def has_split(config: DataConfig, split: Split) -> bool:
    """Whether ``build_dataset(config, split, ...)`` has data to read.

    A split named explicitly in the config counts as present (building it then names what is missing);
    a default one counts when its folder or list exists; val also counts when carved from train.
    """
    if split == "train":
        return True
    return _has_own_split(config, split) or (split == "val" and config.val_from_train > 0)


def stratified_split(labels: list[int], fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, val): per class, ``round(fraction * n)`` samples (at most n - 1) chosen with a
    fixed seed go to val, so every class keeps training samples and val is the same in every run."""
    labels_arr = np.asarray(labels)
    rng = np.random.default_rng(VAL_SEED)
    val = []
    for label in np.unique(labels_arr):
        members = np.flatnonzero(labels_arr == label)
        count = min(round(fraction * len(members)), len(members) - 1)
        val.append(rng.permutation(members)[:count])
    val_idx = np.sort(np.concatenate(val)) if val else np.empty(0, dtype=np.int64)
    train_idx = np.setdiff1d(np.arange(len(labels_arr)), val_idx)
    return train_idx, val_idx
