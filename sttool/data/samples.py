"""Where a sample came from, and what happens when it cannot be read: an error naming it, or a skip.

Kept free of torch so list parsing and the decode worker can use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

from sttool.errors import SttoolError


@dataclass(frozen=True)
class ListEntry:
    """One sample of a list or annotation file: the resolved file, its label, and where it was listed."""

    path: str
    label: int
    source: str | None = None  # the list / annotation file
    line: int | None = None  # 1-based line in ``source``; None for JSON entries and folder scans
    row: int | None = None  # the image's row, for sets held in memory (CIFAR-100, SVHN)


class SkippedSample(NamedTuple):
    """A sample that could not be read, returned instead of ``(x, label)`` with ``on_bad_sample: skip``.

    ``shape`` is the shape the sample would have had, so an all-skipped batch still has the right
    trailing dimensions.
    """

    path: str
    line: int | None
    reason: str
    source: str | None = None
    shape: tuple[int, ...] | None = None


class BadSample(Exception):
    """Raised by readers for one unreadable sample; the dataset turns it into an error or a skip."""


def describe(sample: SkippedSample) -> str:
    """``list.txt line 12: images/a.jpg: reason`` -- the one line a user needs to find the file."""
    if sample.source is None:
        return f"{sample.path}: {sample.reason}"
    at = f" line {sample.line}" if sample.line is not None else ""
    return f"{sample.source}{at}: {sample.path}: {sample.reason}"


def bad_sample(
    entry: ListEntry, reason: str, policy: Literal["error", "skip"], shape: tuple[int, ...] | None = None
) -> SkippedSample:
    """Return the SkippedSample for ``entry`` under ``skip``; raise SttoolError naming it under ``error``."""
    skipped = SkippedSample(entry.path, entry.line, reason, entry.source, shape)
    if policy == "skip":
        return skipped
    raise SttoolError(describe(skipped) + " (set data.on_bad_sample: skip to skip such samples)")
