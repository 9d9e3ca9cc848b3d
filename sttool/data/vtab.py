"""VTAB-1K: the 19 task folders, their class counts, and the honest train800 / val200 / test protocol.

Layout (NOAH, FacT, SSF, DyT, V-PETL): ``ROOT/<task>/{train800,val200,train800val200,test}.txt`` with
lines ``<relative/image/path> <int label>`` relative to the task folder. Hyperparameters are chosen on
train800 -> val200; the final run trains on train800val200 and reports the full test split.
"""

from __future__ import annotations

from pathlib import Path

from sttool.config.schema import closest
from sttool.errors import SttoolError

# Class counts as in DyT / FacT ``datasets/vtab.py`` (ANCHORS 5.5).
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


def vtab_class_count(task: str, num_classes: int | None, where: str) -> int:
    """The task's class count from the table; a task outside the table needs ``num_classes``."""
    if task in VTAB_CLASSES:
        known = VTAB_CLASSES[task]
        if num_classes is not None and num_classes != known:
            raise SttoolError(f"{where}.num_classes: {num_classes}, but VTAB-1K task '{task}' has {known} classes")
        return known
    if num_classes is None:
        raise SttoolError(
            f"{where}.task: '{task}' is not a VTAB-1K task; {closest(task, tuple(VTAB_CLASSES))}"
            " (or set data.num_classes for a custom task folder)"
        )
    return num_classes


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
