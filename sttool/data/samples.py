"""Where a sample came from, what happens when it cannot be read (an error naming it, or a skip), and
reading a file with a deadline.

Every file read on the way to a model (images, masks, list and annotation files) goes through
``read_bytes``: a read that never finishes (a network disk that hangs, a FIFO nobody writes) costs the
deadline, then fails like a missing file, and Ctrl-C or SIGTERM are handled meanwhile; the whole file is
read once, so a file rewritten while being read is either the old or the new one to the decoder.
Kept free of torch so list parsing and the decode worker can use it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, NamedTuple, TypeVar

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


T = TypeVar("T")
R = TypeVar("R")


def check_all(items: Sequence[T], check: Callable[[T], R], workers: int, advance: Callable[[int], None]) -> list[R]:
    """``check(item)`` for every item on ``workers`` threads; results in the order of ``items``."""
    results = []
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for future in [pool.submit(check, item) for item in items]:
            results.append(future.result())
            advance(1)
    return results


READ_TIMEOUT = 10.0  # seconds; data.decode_timeout sets it for a run (0: no deadline)


class ReadTimeout(OSError):
    """A file read that did not finish within its deadline."""


def read_bytes(path: str | Path, timeout: float = READ_TIMEOUT) -> bytes:
    """The whole file, read in a helper thread that the caller stops waiting for after ``timeout``
    seconds (0: no deadline, read here). Raises OSError (``ReadTimeout`` when late)."""
    if timeout <= 0:
        with open(path, "rb") as handle:
            return handle.read()
    result: dict[str, bytes | BaseException] = {}

    def read() -> None:
        try:
            with open(path, "rb") as handle:
                result["data"] = handle.read()
        except BaseException as err:  # handed to the caller below
            result["error"] = err

    reader = threading.Thread(target=read, name=f"read {path}", daemon=True)  # a hung read must not block exit
    reader.start()
    reader.join(timeout)
    if reader.is_alive():
        raise ReadTimeout(f"reading did not finish within {timeout:g} s (data.decode_timeout)")
    if "error" in result:
        error = result["error"]
        raise error if isinstance(error, OSError) else OSError(str(error))
    data = result["data"]
    assert isinstance(data, bytes)
    return data


def read_lines(path: Path, timeout: float = READ_TIMEOUT) -> list[tuple[int, str]]:
    """(line number, text) of a text file written by any tool: UTF-8 with or without a byte-order mark,
    LF or CRLF line ends; blank lines left out, text stripped. A line that is not UTF-8 is an error
    naming its number."""
    try:
        data = read_bytes(path, timeout)
    except FileNotFoundError:
        raise SttoolError(f"{path} not found") from None
    except OSError as err:
        raise SttoolError(f"{path}: cannot be read: {err}") from None
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    lines = []
    for number, raw in enumerate(data.splitlines(), start=1):
        try:
            text = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise SttoolError(f"{path} line {number}: not UTF-8 text; save the file as UTF-8") from None
        if text:
            lines.append((number, text))
    return lines
