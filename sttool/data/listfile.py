"""Samples from list files (``relative/path label`` per line), class lists, ImageFolder trees, and the
manifest ``sttool prepare videos`` writes.

List paths are relative to the list file's folder (or absolute), the rule shared by VTAB-1K task
folders, the synthetic video set and what ``sttool prepare videos`` writes. The label is the last
whitespace-separated field, so paths may contain spaces. The manifest is CSV with header
``split,path,label,num_frames,fps,width,height``; ``num_frames`` is the count that really decodes,
so sampling is clamped to it even where the container claims more (decord hangs there).
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from sttool.data.samples import ListEntry, SkippedSample, bad_sample, read_lines
from sttool.errors import SttoolError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm")


LABEL = re.compile(r"-?[0-9]+")  # ASCII digits only: int() would also take "３", "1_0" or "+3"


def read_list(path: Path, base: Path | None = None) -> list[ListEntry]:
    """Entries of a list file, paths relative to ``base`` (default: the list's folder); blank lines and
    ``#`` comments are ignored. Any tool's file reads the same (BOM, CRLF, tabs); a malformed line is
    an error naming its number."""
    if not path.is_file():
        raise SttoolError(f"list file {path} not found")
    entries = []
    for number, text in read_lines(path):
        if text.startswith("#"):
            continue
        fields = text.rsplit(maxsplit=1)
        if len(fields) != 2 or not LABEL.fullmatch(fields[1]):
            raise SttoolError(f"{path} line {number}: expected '<relative/path> <integer label>' (label in digits 0-9), got {text!r}")
        label = int(fields[1])
        if label < 0:
            raise SttoolError(f"{path} line {number}: label {label} is negative")
        entries.append(ListEntry(os.path.join(base or path.parent, fields[0]), label, str(path), number))
    if not entries:
        raise SttoolError(f"{path}: the list is empty (expected lines '<relative/path> <integer label>')")
    return entries


def read_classes(path: Path) -> list[str] | None:
    """Class names, one per line in label order, or None when there is no such file."""
    if not path.is_file():
        return None
    names = [text for _, text in read_lines(path)]
    if not names:
        raise SttoolError(f"{path}: the class list is empty")
    return names


def check_labels(
    entries: list[ListEntry], num_classes: int, policy: Literal["error", "skip"], origin: str
) -> tuple[list[ListEntry], list[SkippedSample]]:
    """Entries whose label is in ``0..num_classes-1``; the others are errors, or skipped under ``skip``.

    ``origin`` says where the class count came from (shown in the message).
    """
    kept, rejected = [], []
    for entry in entries:
        if 0 <= entry.label < num_classes:
            kept.append(entry)
        else:
            reason = f"label {entry.label} is outside 0..{num_classes - 1} ({num_classes} classes {origin})"
            rejected.append(bad_sample(entry, reason, policy))  # raises under "error"
    if not kept:
        raise SttoolError(f"{entries[0].source}: no sample has a valid label ({len(rejected)} rejected)")
    return kept, rejected


def folder_classes(folder: Path) -> list[str]:
    """Class names of an ImageFolder split: its sub-folders, sorted (label = position)."""
    if not folder.is_dir():
        raise SttoolError(f"image folder {folder} not found (expected {folder}/<class>/<image>)")
    classes = sorted(entry.name for entry in os.scandir(folder) if entry.is_dir() and not entry.name.startswith("."))
    if not classes:
        raise SttoolError(f"image folder {folder} has no class sub-folders (expected {folder}/<class>/<image>)")
    return classes


def scan_folder(folder: Path, classes: list[str]) -> list[ListEntry]:
    """Image files of ``folder/<class>/`` (recursively, sorted), labelled by their class's position."""
    index = {name: label for label, name in enumerate(classes)}
    for name in folder_classes(folder):
        if name not in index:
            raise SttoolError(f"{folder / name}: class '{name}' is not among the training classes ({len(classes)} found)")
    entries = []
    for name in classes:
        files = []
        for directory, _, names in os.walk(folder / name):
            files += [os.path.join(directory, n) for n in names if n.lower().endswith(IMAGE_SUFFIXES)]
        entries += [ListEntry(path, index[name]) for path in sorted(files)]
    if not entries:
        raise SttoolError(f"image folder {folder} has no images ({', '.join(IMAGE_SUFFIXES)})")
    return entries


MANIFEST = "manifest.csv"
MANIFEST_FIELDS = ("split", "path", "label", "num_frames", "fps", "width", "height")


def write_manifest(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=MANIFEST_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def read_frame_counts(path: Path) -> dict[str, int]:
    """Resolved video path -> decodable frame count; empty when there is no manifest."""
    if not path.is_file():
        return {}
    counts = {}
    with open(path, encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        if not {"path", "num_frames"} <= set(reader.fieldnames or ()):
            raise SttoolError(f"{path}: a manifest needs the columns {', '.join(MANIFEST_FIELDS)}")
        for row in reader:
            try:
                counts[os.path.join(path.parent, row["path"])] = int(row["num_frames"])
            except (TypeError, ValueError):
                raise SttoolError(f"{path} line {reader.line_num}: num_frames {row['num_frames']!r} is not an integer") from None
    return counts
