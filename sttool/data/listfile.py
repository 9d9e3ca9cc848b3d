"""Samples from list files (``relative/path label`` per line), class lists, and ImageFolder trees.

List paths are relative to the list file's folder (or absolute), the rule shared by VTAB-1K task
folders, the synthetic video set and what ``sttool prepare videos`` writes. The label is the last
whitespace-separated field, so paths may contain spaces.
"""

from __future__ import annotations

import os
from pathlib import Path

from sttool.data.samples import ListEntry, SkippedSample, bad_sample
from sttool.errors import SttoolError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm")


def read_list(path: Path, base: Path | None = None) -> list[ListEntry]:
    """Entries of a list file, paths relative to ``base`` (default: the list's folder); blank lines and
    ``#`` comments are ignored. Malformed lines are errors."""
    if not path.is_file():
        raise SttoolError(f"list file {path} not found")
    entries = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            fields = text.rsplit(maxsplit=1)
            if len(fields) != 2 or not fields[1].lstrip("-").isdigit():
                raise SttoolError(f"{path} line {number}: expected '<relative/path> <integer label>', got {text!r}")
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
    names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not names:
        raise SttoolError(f"{path}: the class list is empty")
    return names


def check_labels(
    entries: list[ListEntry], num_classes: int, policy: str, origin: str
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
