"""VTAB-1K: the 19 task folders, their class counts, and the honest train800 / val200 / test protocol.

Layout (NOAH, FacT, SSF, DyT, V-PETL): ``ROOT/<task>/{train800,val200,train800val200,test}.txt`` with
lines ``<relative/image/path> <int label>`` relative to the task folder. Hyperparameters are chosen on
train800 -> val200; the final run trains on train800val200 and reports the full test split.

``check_vtab`` (``sttool prepare vtab``) checks a tree before training on it: every list line must
name a file that exists and decodes, with a label inside the task's class count; the report counts
lines per task and split and names each bad file with its list and line. ``write_vtab_task`` writes a
task folder in this layout (micro-VTAB and the real-image transfer tasks), with a ``classes.txt`` that
gives a task outside the 19 its class names and count.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from sttool.config.schema import closest
from sttool.data.image_dataset import load_rgb
from sttool.data.listfile import read_list
from sttool.data.samples import BadSample, ListEntry, SkippedSample, check_all
from sttool.errors import SttoolError
from sttool.progress import SILENT, Progress

# Class counts as in DyT / FacT ``datasets/vtab.py`` (the NOAH / FacT / DyT repositories).
VTAB_CLASSES: dict[str, int] = {
    "cifar": 100,
    "caltech101": 102,
    "dtd": 47,
    "oxford_flowers102": 102,
    "oxford_iiit_pet": 37,
    "svhn": 10,
    "sun397": 397,
    "patch_camelyon": 2,
    "eurosat": 10,
    "resisc45": 45,
    "diabetic_retinopathy": 5,
    "clevr_count": 8,
    "clevr_dist": 6,
    "dmlab": 6,
    "kitti": 4,
    "dsprites_loc": 16,
    "dsprites_ori": 16,
    "smallnorb_azi": 18,
    "smallnorb_ele": 9,
}

VTAB_SPLITS = ("train800", "val200", "train800val200", "test")


CLASSES_FILE = "classes.txt"  # a task folder's class names, one per line in label order (optional)
WRITTEN_MARK = ".sttool-task"  # marks a task folder sttool wrote, so writing it again may replace it


def vtab_class_count(task: str, num_classes: int | None, where: str, root: str | Path | None = None) -> int:
    """The task's class count from the table, or from the task folder's ``classes.txt``; any other task
    needs ``num_classes``."""
    names = task_class_names(root, task) if root is not None else None
    if names is not None and task not in VTAB_CLASSES:
        if num_classes is not None and num_classes != len(names):
            raise SttoolError(f"{where}.num_classes: {num_classes}, but {Path(root or '') / task / CLASSES_FILE} lists {len(names)} classes")
        return len(names)
    if task in VTAB_CLASSES:
        known = VTAB_CLASSES[task]
        if num_classes is not None and num_classes != known:
            raise SttoolError(f"{where}.num_classes: {num_classes}, but VTAB-1K task '{task}' has {known} classes")
        return known
    if num_classes is None:
        raise SttoolError(
            f"{where}.task: '{task}' is not a VTAB-1K task; {closest(task, tuple(VTAB_CLASSES))}"
            f" (or, for a custom task folder, give it a {CLASSES_FILE} or set data.num_classes)"
        )
    return num_classes


def task_class_names(root: str | Path | None, task: str) -> list[str] | None:
    """The names in ``ROOT/<task>/classes.txt``, or None when the folder has none."""
    from sttool.data.listfile import read_classes

    return None if root is None else read_classes(Path(root) / task / CLASSES_FILE)


def write_vtab_task(folder: Path, class_names: Sequence[str], splits: dict[str, int],
                    render: Callable[[str, int], tuple[np.ndarray, np.ndarray]],
                    advance: Callable[[int], None] | None = None) -> dict[str, int]:
    """Write a task folder in the VTAB-1K layout: ``images/<split>/<n>.png``, one list per split (and
    ``train800val200.txt``, the concatenation of train800 and val200) and ``classes.txt``.

    ``render(split, chunk)`` gives the next images (N, H, W, 3) uint8 and labels (N,) of ``split``;
    ``splits`` maps train800, val200 and test to their sizes. A folder sttool wrote before is replaced.
    """
    if folder.exists():
        if not (folder / WRITTEN_MARK).is_file():
            raise SttoolError(f"{folder} exists and was not written by sttool; choose another --out")
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    lines: dict[str, list[str]] = {}
    for split, count in splits.items():
        (folder / "images" / split).mkdir(parents=True)
        lines[split] = []
        chunk = 0
        while len(lines[split]) < count:
            images, labels = render(split, chunk)
            if len(images) == 0:
                raise SttoolError(f"{folder}: the {split} split ran out of images after {len(lines[split])} of {count}")
            for image, label in zip(images, labels, strict=True):
                if len(lines[split]) == count:
                    break
                relative = f"images/{split}/{len(lines[split]):05d}.png"
                Image.fromarray(image).save(folder / relative)
                lines[split].append(f"{relative} {int(label)}\n")
            if advance is not None:
                advance(len(images))
            chunk += 1
    for split, rows in lines.items():
        (folder / f"{split}.txt").write_text("".join(rows))
    if "train800" in lines and "val200" in lines:
        (folder / "train800val200.txt").write_text("".join(lines["train800"] + lines["val200"]))
    (folder / CLASSES_FILE).write_text("".join(f"{name}\n" for name in class_names))
    (folder / WRITTEN_MARK).write_text("written by sttool\n")
    return {split: len(rows) for split, rows in lines.items()}


def vtab_list(root: str | Path, task: str, split: str) -> Path:
    """The list file of one split, with an error that says what a VTAB-1K task folder holds."""
    folder = Path(root) / task
    if not folder.is_dir():
        present = sorted(p.name for p in Path(root).iterdir() if p.is_dir()) if Path(root).is_dir() else []
        found = f"found: {', '.join(present)}" if present else f"{root} does not exist or is empty"
        raise SttoolError(f"VTAB-1K task folder {folder} not found ({found}); expected ROOT/<task>/train800.txt etc.")
    path = folder / f"{split}.txt"
    if not path.is_file():
        lists = sorted(p.stem for p in folder.glob("*.txt"))
        raise SttoolError(f"VTAB-1K list {path} not found; {task} has: {', '.join(lists) or 'no .txt lists'}")
    return path


@dataclass
class VtabReport:
    root: str
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # task -> split -> lines
    bad: list[SkippedSample] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # missing or malformed lists

    @property
    def ok(self) -> bool:
        return not self.bad and not self.problems


def _tasks(root: Path, task: str | None) -> list[str]:
    if not root.is_dir():
        raise SttoolError(f"VTAB-1K root {root} does not exist (expected {root}/<task>/train800.txt etc.)")
    if task is not None:
        if not (root / task).is_dir():
            raise SttoolError(f"VTAB-1K task folder {root / task} not found")
        return [task]
    tasks = sorted(p.name for p in root.iterdir() if p.is_dir() and any((p / f"{s}.txt").is_file() for s in VTAB_SPLITS))
    if not tasks:
        raise SttoolError(f"no VTAB-1K task folder under {root} (expected {root}/<task>/train800.txt etc.)")
    return tasks


def _check_file(entry: ListEntry) -> str | None:
    try:
        load_rgb(entry.path)
    except BadSample as err:
        return str(err)
    return None


def check_vtab(root: str | Path, task: str | None = None, workers: int = 4, progress: Progress = SILENT) -> VtabReport:
    """Check every list of every task folder under ``root`` (or only ``task``)."""
    root = Path(root)
    report = VtabReport(str(root))
    to_decode: list[ListEntry] = []
    for name in _tasks(root, task):
        report.counts[name] = {}
        classes = VTAB_CLASSES.get(name)
        if classes is None:
            report.problems.append(f"{root / name}: not one of the 19 VTAB-1K tasks, labels not range-checked")
        for split in VTAB_SPLITS:
            path = root / name / f"{split}.txt"
            if not path.is_file():
                report.problems.append(f"{path}: missing")
                continue
            try:
                entries = read_list(path)
            except SttoolError as err:
                report.problems.append(str(err))
                continue
            report.counts[name][split] = len(entries)
            for entry in entries:
                if classes is not None and not 0 <= entry.label < classes:
                    reason = f"label {entry.label} is outside 0..{classes - 1} ({name} has {classes} classes)"
                    report.bad.append(SkippedSample(entry.path, entry.line, reason, entry.source))
            to_decode += entries
    unique = list({entry.path: entry for entry in to_decode}.values())  # train800val200 repeats the others
    reasons = check_all(unique, _check_file, workers, progress.task("decoding images", len(unique)).advance)
    failed = {entry.path: reason for entry, reason in zip(unique, reasons, strict=True) if reason is not None}
    report.bad += [SkippedSample(e.path, e.line, failed[e.path], e.source) for e in to_decode if e.path in failed]
    return report
