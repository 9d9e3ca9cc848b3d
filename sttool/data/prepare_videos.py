"""``sttool prepare videos``: official annotations -> list files, after opening every video with a deadline.

Writes into OUT: ``<split>.txt`` (good videos, ``relative/path label``, paths relative to OUT),
``classes.txt``, ``manifest.csv`` (good videos with decodable frame count, fps, size) and ``bad.csv``
(split, path, source, line, kind, reason) where kind is missing, undecodable, timeout, no frames or
too short. Train on the result with ``dataset: video_list, root: OUT``.

Files are checked in parallel threads, in order: image decoding releases the GIL in PIL; video checks
wait on decode worker processes, one per thread.
"""

from __future__ import annotations

import csv
import os
import queue
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from sttool.data.annotations import (
    k400_classes,
    k400_rows,
    k400_split_entries,
    ssv2_split_entries,
    video_index,
)
from sttool.data.listfile import MANIFEST, read_classes, read_list, write_manifest
from sttool.data.samples import ListEntry, check_all
from sttool.data.video.backends import VideoError
from sttool.data.video.guarded import DecodeProcess, DecodeTimeout, GuardedBackend
from sttool.errors import SttoolError
from sttool.progress import SILENT, Progress

BAD_FIELDS = ("split", "path", "source", "line", "kind", "reason")


@dataclass(frozen=True)
class BadVideo:
    split: str
    path: str
    source: str | None
    line: int | None
    kind: str
    reason: str


@dataclass
class VideoPrepReport:
    out: str
    num_classes: int
    listed: dict[str, int] = field(default_factory=dict)
    good: dict[str, int] = field(default_factory=dict)
    bad: list[BadVideo] = field(default_factory=list)
    written: list[str] = field(default_factory=list)

    def bad_kinds(self) -> Counter[str]:
        return Counter(item.kind for item in self.bad)


def split_of(path: Path) -> str:
    """train / val / test from an annotation file name (validation and validate count as val)."""
    stem = path.stem.lower()
    for key, split in (("train", "train"), ("val", "val"), ("test", "test")):
        if key in stem:
            return split
    raise SttoolError(f"{path}: cannot tell its split from the name (expected train, val/validation or test in it)")


def read_annotations(
    dataset: Literal["ssv2", "k400", "list"], video_root: Path, annotations: list[Path]
) -> tuple[dict[str, list[ListEntry]], list[str]]:
    """Entries per split and the class names, from SSv2 JSONs, K400 CSVs or ``path label`` lists."""
    for path in annotations:
        if not path.is_file():
            raise SttoolError(f"annotation file {path} not found")
    splits: dict[str, list[ListEntry]] = {}
    if dataset == "ssv2":
        labels = [p for p in annotations if "labels" in p.stem.lower()]
        if len(labels) != 1:
            raise SttoolError("ssv2: give exactly one labels JSON (something-something-v2-labels.json) among --annotations")
        split_files = [p for p in annotations if p not in labels]
        if not split_files:
            raise SttoolError("ssv2: give the train and/or validation JSON besides the labels JSON")
        classes: list[str] = []
        for path in split_files:
            splits[split_of(path)], classes = ssv2_split_entries(path, labels[0], video_root, None)
        return splits, classes
    if dataset == "k400":
        by_split = {split_of(path): path for path in annotations}
        if "train" not in by_split:
            raise SttoolError("k400: the train CSV is needed among --annotations (the class index comes from its sorted labels)")
        classes = k400_classes(k400_rows(by_split["train"]), by_split["train"])
        videos = video_index(video_root)
        return {split: k400_split_entries(path, classes, videos, video_root, split) for split, path in by_split.items()}, classes
    for path in annotations:
        splits[path.stem] = read_list(path, base=video_root)
    names = read_classes(annotations[0].parent / "classes.txt")
    count = max(entry.label for entries in splits.values() for entry in entries) + 1
    return splits, names or [str(i) for i in range(count)]


def _write_lists(out: Path, good: dict[str, list[tuple[ListEntry, dict]]], classes: list[str], bad: list[BadVideo]) -> list[str]:
    written = []
    manifest_rows = []
    for split, items in good.items():
        lines = []
        for entry, info in items:
            relative = os.path.relpath(entry.path, out)
            lines.append(f"{relative} {entry.label}\n")
            manifest_rows.append({"split": split, "path": relative, "label": entry.label, **info})
        (out / f"{split}.txt").write_text("".join(lines), encoding="utf-8")
        written.append(str(out / f"{split}.txt"))
    (out / "classes.txt").write_text("".join(f"{name}\n" for name in classes), encoding="utf-8")
    write_manifest(out / MANIFEST, manifest_rows)
    with open(out / "bad.csv", "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=BAD_FIELDS)
        writer.writeheader()
        writer.writerows(asdict(item) for item in bad)
    return written + [str(out / name) for name in ("classes.txt", MANIFEST, "bad.csv")]


def prepare_videos(
    dataset: Literal["ssv2", "k400", "list"],
    video_root: str | Path,
    annotations: Sequence[str | Path],
    out: str | Path,
    timeout: float = 10.0,
    workers: int = 2,
    min_frames: int = 8,
    backend: str = "auto",
    progress: Progress = SILENT,
) -> VideoPrepReport:
    """Convert annotations to list files and check every video (``timeout`` seconds each, in workers)."""
    video_root, out = Path(video_root), Path(out)
    if not video_root.is_dir():
        raise SttoolError(f"--root {video_root}: not a folder (the folder holding the videos)")
    splits, classes = read_annotations(dataset, video_root, [Path(p) for p in annotations])
    out.mkdir(parents=True, exist_ok=True)
    report = VideoPrepReport(str(out), len(classes))
    good: dict[str, list[tuple[ListEntry, dict]]] = {}
    for split, entries in splits.items():
        report.listed[split] = len(entries)
        outcomes = probe_videos([e.path for e in entries], backend, timeout, workers, progress.task(f"checking {split} videos", len(entries)).advance)
        good[split] = []
        for entry, (kind, result) in zip(entries, outcomes, strict=True):
            if kind == "ok" and result["num_frames"] == 0:
                kind, result = "no frames", "the video stream has no decodable frame"
            elif kind == "ok" and result["num_frames"] < min_frames:
                kind, result = "too short", f"{result['num_frames']} decodable frames < {min_frames} needed"
            if kind == "ok":
                good[split].append((entry, result))
            else:
                report.bad.append(BadVideo(split, entry.path, entry.source, entry.line, kind, str(result)))
        report.good[split] = len(good[split])
    report.written = _write_lists(out, good, classes, report.bad)
    return report


Outcome = tuple[str, Any]  # ("ok", probe dict), or a kind of failure (missing, undecodable, timeout) and its reason


def probe_videos(paths: Sequence[str], backend: str, timeout: float, workers: int, advance: Callable[[int], None]) -> list[Outcome]:
    """Per path: ("ok", probe dict) or (kind of failure, reason); each probe bounded by ``timeout`` seconds
    in its own decode worker process, so a hanging file costs one timeout, never the scan."""
    idle: queue.Queue[DecodeProcess] = queue.Queue()
    processes = [DecodeProcess() for _ in range(max(1, workers))]
    for process in processes:
        idle.put(process)

    def check(path: str) -> Outcome:
        if not os.path.exists(path):
            return "missing", "file not found"
        process = idle.get()
        try:
            return "ok", GuardedBackend(backend, timeout, process).probe(path)
        except DecodeTimeout as err:
            return "timeout", str(err)
        except VideoError as err:
            return "undecodable", str(err)
        finally:
            idle.put(process)

    try:
        return check_all(paths, check, workers, advance)
    finally:
        for process in processes:
            process.close()
