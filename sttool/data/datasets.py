"""Where the samples of one split come from, per dataset: which named split each of train/val/test
means, a val split carved from train, and the files (or torchvision arrays), labels and class list.

CIFAR-100, SVHN and Food-101 come through torchvision, from a local root, downloading only when
asked; torchvision checks the MD5 of every CIFAR and SVHN file against the official release before
reading it, so only those known files are ever unpickled (CIFAR's python format is pickle).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from sttool.data.annotations import k400_entries, ssv2_entries
from sttool.data.config import DATASETS, NO_SPLIT, DataConfig
from sttool.data.listfile import (
    MANIFEST,
    folder_classes,
    read_classes,
    read_frame_counts,
    read_list,
    scan_folder,
)
from sttool.data.samples import ListEntry
from sttool.data.synthetic.generate import default_out
from sttool.data.vtab import task_class_names, vtab_class_count, vtab_list
from sttool.errors import SttoolError

Split = Literal["train", "val", "test"]
SPLITS: tuple[Split, ...] = ("train", "val", "test")

VAL_SEED = 0  # the carved val split is the same in every run, whatever the training seed


def split_name(config: DataConfig, split: Split) -> str | None:
    """The named split behind ``split``, or None when the dataset has none (then val may be carved)."""
    if split not in SPLITS:
        raise SttoolError(f"split '{split}' is not one of {', '.join(SPLITS)}")
    explicit = getattr(config, f"{split}_split")
    if explicit is not None:
        return None if explicit == NO_SPLIT else explicit
    train, val, test = config.facts.splits
    if split == "val" and config.dataset == "vtab" and (config.train_split or train) != "train800":
        return None  # the val200 images are in train800val200: validating on them would be training data
    return {"train": train, "val": val, "test": test}[split]


def _default_exists(config: DataConfig, name: str) -> bool:
    where = config.facts.split_path
    return where is None or (Path(config.root) / where.format(split=name, task=config.task or "")).exists()


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


def torchvision_split(dataset: str, root: str, split: str, download: bool) -> tuple[list[ListEntry], list[str], np.ndarray | None]:
    """(entries, class names, images): images (N, H, W, 3) uint8 for in-memory sets, None for Food-101's files."""
    offered = DATASETS[dataset].torchvision_splits
    if split not in offered:
        raise SttoolError(f"data: {dataset} has splits {', '.join(offered)}, not '{split}'")
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
            f"data: {dataset} not found or incomplete under {Path(root)} ({DATASETS[dataset].layout.format(root=root)}); "
            "set data.download=true to download it there"
        ) from None
    except ModuleNotFoundError as err:
        raise SttoolError(f"data: torchvision needs {err.name} to read {dataset} (pip install {err.name})") from None
    where = f"{root}/{dataset}-{split}"
    entries = [ListEntry(f"{where}#{row}", int(label), row=row) for row, label in enumerate(labels)]
    return entries, classes, np.ascontiguousarray(images)


@dataclass
class Source:
    """The samples of one split, with the class count and where that count came from (for messages)."""

    entries: list[ListEntry]
    num_classes: int
    class_names: list[str]
    origin: str
    frame_counts: dict[str, int] = field(default_factory=dict)
    images: np.ndarray | None = None  # (N, H, W, 3) uint8, for sets held in memory


def _classes(names: list[str], config: DataConfig, where: str) -> tuple[int, list[str], str]:
    if config.num_classes is not None and config.num_classes != len(names):
        raise SttoolError(f"data.num_classes: {config.num_classes}, but {where} has {len(names)} classes")
    return len(names), names, f"in {where}"


def _image_folder(config: DataConfig, base: Path, name: str) -> Source:
    train_name = split_name(config, "train") or "train"
    count, names, origin = _classes(folder_classes(base / train_name), config, str(base / train_name))
    return Source(scan_folder(base / name, names), count, names, origin)


def _synthetic_images(config: DataConfig, name: str) -> Source:
    info_path = Path(config.root) / "images" / "info.json"
    if config.task is not None and info_path.is_file():
        task = json.loads(info_path.read_text()).get("task")
        if task != config.task:
            made_by = f"sttool prepare synthetic --task {config.task} writes it to {default_out(config.task)}"
            raise SttoolError(f"data.task: '{config.task}', but {info_path} holds the '{task}' set; point data.root at the {config.task} set ({made_by})")
    return _image_folder(config, Path(config.root) / "images", name)


def _list_dataset(config: DataConfig, folder: Path, name: str) -> Source:
    """``folder/<split>.txt`` lists, ``classes.txt`` if present (else labels of the train list), and the
    manifest's decodable frame counts if present."""
    entries = read_list(folder / f"{name}.txt")
    names = read_classes(folder / "classes.txt")
    if names is not None:
        count, names, origin = _classes(names, config, str(folder / "classes.txt"))
    elif config.num_classes is not None:
        count, origin = config.num_classes, "from data.num_classes"
        names = [str(i) for i in range(count)]
    else:
        train_path = folder / f"{split_name(config, 'train') or 'train'}.txt"
        count = max(entry.label for entry in read_list(train_path)) + 1
        names, origin = [str(i) for i in range(count)], f"inferred from the labels of {train_path} (add classes.txt to fix them)"
    return Source(entries, count, names, origin, frame_counts=read_frame_counts(folder / MANIFEST))


def _vtab(config: DataConfig, name: str) -> Source:
    assert config.task is not None
    count = vtab_class_count(config.task, config.num_classes, "data", config.root)
    listed = task_class_names(config.root, config.task)
    names = listed if listed is not None and len(listed) == count else [str(i) for i in range(count)]  # the table wins
    origin = f"in VTAB-1K task {config.task}"
    return Source(read_list(vtab_list(config.root, config.task, name)), count, names, origin)


def load_source(config: DataConfig, name: str) -> Source:
    """The samples of the split named ``name`` (e.g. train800, validation) of the configured dataset."""
    root = Path(config.root)
    if config.facts.torchvision_splits:
        entries, names, images = torchvision_split(config.dataset, config.root, name, config.download)
        count, names, origin = _classes(names, config, f"{config.dataset}")
        return Source(entries, count, names, origin, images=images)
    if not root.is_dir():
        hint = config.facts.layout.format(root=root)
        raise SttoolError(f"data.root: {root} does not exist ({config.dataset}: {hint})")
    if config.dataset == "synthetic_images":
        return _synthetic_images(config, name)
    if config.dataset == "imagefolder":
        return _image_folder(config, root, name)
    if config.dataset == "vtab":
        return _vtab(config, name)
    if config.dataset == "synthetic_videos":
        return _list_dataset(config, root / "videos", name)
    if config.dataset == "video_list":
        return _list_dataset(config, root, name)
    reader = ssv2_entries if config.dataset == "ssv2" else k400_entries
    entries, names = reader(root, name, config.video_dir)
    count, names, origin = _classes(names, config, f"the {config.dataset} annotations under {root}")
    return Source(entries, count, names, origin)
