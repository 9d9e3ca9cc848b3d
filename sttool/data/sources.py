"""Where the samples of one named split come from, per dataset: files, labels and the class list."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sttool.data.annotations import k400_entries, ssv2_entries
from sttool.data.config import DataConfig
from sttool.data.listfile import folder_classes, read_classes, read_list, scan_folder
from sttool.data.manifest import MANIFEST, read_frame_counts
from sttool.data.samples import ListEntry
from sttool.data.splits import split_name
from sttool.data.synthetic.generate import default_out
from sttool.data.torchvision_sets import torchvision_split
from sttool.data.vtab import vtab_class_count, vtab_list
from sttool.errors import SttoolError

ROOT_HINTS = {
    "synthetic_images": "create it with 'sttool prepare synthetic --out {root}'",
    "synthetic_videos": "create it with 'sttool prepare synthetic --out {root}'",
    "vtab": "expected {root}/<task>/train800.txt, val200.txt, train800val200.txt, test.txt",
    "imagefolder": "expected {root}/<split>/<class>/<image>",
    "video_list": "expected {root}/<split>.txt with lines '<relative/path> <label>' (see 'sttool prepare videos')",
    "ssv2": "expected the SSv2 JSON annotations and <id>.webm videos under it",
    "k400": "expected the Kinetics-400 CSVs and clips under it",
}


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
    count = vtab_class_count(config.task, config.num_classes, "data")
    origin = f"in VTAB-1K task {config.task}"
    return Source(read_list(vtab_list(config.root, config.task, name)), count, [str(i) for i in range(count)], origin)


def load_source(config: DataConfig, name: str) -> Source:
    """The samples of the split named ``name`` (e.g. train800, validation) of the configured dataset."""
    root = Path(config.root)
    if config.dataset in ("cifar100", "svhn", "food101"):
        entries, names, images = torchvision_split(config.dataset, config.root, name, config.download)
        count, names, origin = _classes(names, config, f"{config.dataset}")
        return Source(entries, count, names, origin, images=images)
    if not root.is_dir():
        hint = ROOT_HINTS[config.dataset].format(root=root)
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
