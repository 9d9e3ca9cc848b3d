"""``sttool prepare vtab``: check a VTAB-1K tree before training on it.

Every list line must name a file that exists and decodes, with a label inside the task's class count;
the report counts lines per task and split and names each bad file with its list and line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sttool.data.image_dataset import load_rgb
from sttool.data.listfile import read_list
from sttool.data.prepare.scan import check_all
from sttool.data.progress import Progress, no_progress
from sttool.data.samples import BadSample, ListEntry, SkippedSample
from sttool.data.vtab import VTAB_CLASSES, VTAB_SPLITS
from sttool.errors import SttoolError


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


def check_vtab(root: str | Path, task: str | None = None, workers: int = 4, progress: Progress = no_progress) -> VtabReport:
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
    reasons = check_all(unique, _check_file, workers, progress("decoding images", len(unique)))
    failed = {entry.path: reason for entry, reason in zip(unique, reasons, strict=True) if reason is not None}
    report.bad += [SkippedSample(e.path, e.line, failed[e.path], e.source) for e in to_decode if e.path in failed]
    return report
