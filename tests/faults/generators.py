"""Bad files and hostile disks, made on the fly by the tests (no binary fixtures in the repository)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
from PIL import Image


def folder_digest(root: Path) -> dict[str, str]:
    """Every file under ``root`` (hidden ones included) with its SHA-256: what "nothing changed" compares."""
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink()}


def png16(path: Path, size: int = 16) -> np.ndarray:
    """A 16-bit grayscale PNG (PIL mode I;16) holding a left-to-right ramp 0..65535; returns the values."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ramp = np.tile(np.linspace(0, 65535, size).round().astype(np.uint16), (size, 1))  # (S, S)
    image = Image.fromarray(ramp)  # uint16: PIL mode I;16
    assert image.mode == "I;16"
    image.save(path)
    return ramp


def png32_int(path: Path, size: int = 8) -> np.ndarray:
    """A 32-bit integer grayscale TIFF (mode I) holding 16-bit values."""
    path.parent.mkdir(parents=True, exist_ok=True)
    values = np.tile(np.linspace(0, 65535, size).round().astype(np.int32), (size, 1))
    image = Image.fromarray(values)  # int32: PIL mode I
    assert image.mode == "I"
    image.save(path)
    return values


def truncated_png(path: Path, keep: int = 60) -> Path:
    """A PNG cut after ``keep`` bytes, as an interrupted copy leaves it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (32, 32), (10, 200, 30)).save(path)
    path.write_bytes(path.read_bytes()[:keep])
    return path


def fifo(path: Path) -> Path:
    """A named pipe nobody writes to: opening it for reading never returns (a hung network file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(path)
    return path


def symlink_loop(path: Path) -> Path:
    """``path`` -> ``path.other`` -> ``path``: every open fails with ELOOP."""
    path.parent.mkdir(parents=True, exist_ok=True)
    other = path.with_name(path.name + ".other")
    os.symlink(other.name, path)
    os.symlink(path.name, other)
    return path


def list_file(path: Path, lines: list[str], *, bom: bool = False, newline: str = "\n", encoding: str = "utf-8") -> Path:
    """A list file as other tools write them: with a byte-order mark, CRLF, or another encoding."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = newline.join(lines).encode(encoding) + newline.encode()
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + data)
    return path


def tear_last_line(path: Path) -> str:
    """Cut the last line of a JSON-lines file in half, as a power cut during a write would."""
    text = path.read_text()
    lines = text.splitlines(keepends=True)
    torn = lines[-1][: len(lines[-1]) // 2]
    path.write_text("".join(lines[:-1]) + torn)
    return torn
