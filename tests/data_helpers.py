"""Tiny data made by the tests themselves: stripe-coded videos, images in every PIL mode, VTAB trees."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from sttool.data.config import InputSpec

BITS = 8


def stripe_frame(index: int, height: int = 32, width: int = 64) -> np.ndarray:
    """A frame whose index is written as 8 black/white vertical stripes (bit b = stripe b), as in decord issue #195's reproduction.

    The stripes survive lossy codecs, so off-by-N decoding shows up as a wrong number.
    """
    frame = np.zeros((height, width, 3), np.uint8)
    for bit in range(BITS):
        if (index >> bit) & 1:
            frame[:, bit * width // BITS : (bit + 1) * width // BITS] = 255
    return frame


def read_stripes(frame: np.ndarray) -> int:
    """The index written by ``stripe_frame``, read from the middle column of each stripe."""
    width = frame.shape[1]
    return sum(int(frame[:, bit * width // BITS + width // (2 * BITS)].mean() > 127) << bit for bit in range(BITS))


def stripe_frames(count: int, height: int = 32, width: int = 64) -> np.ndarray:
    return np.stack([stripe_frame(i, height, width) for i in range(count)])  # (T, H, W, 3)


def write_stripe_video(path: Path, count: int, **writer_options) -> Path:
    from sttool.data.video.write import write_video

    write_video(path, stripe_frames(count), **writer_options)
    return path


def spec(img_size: int = 32, num_frames: int | None = None, crop_pct: float = 1.0) -> InputSpec:
    return InputSpec(img_size=img_size, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), interpolation="bilinear", crop_pct=crop_pct, num_frames=num_frames)


def save_image(path: Path, value: int = 128, size: int = 16, mode: str = "RGB") -> Path:
    """A flat image of ``value`` in PIL mode ``mode`` (RGB, L, LA, RGBA, CMYK, P)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = Image.new("RGB", (size, size), (value, value, value))
    image = rgb.convert("P", palette=Image.Palette.ADAPTIVE) if mode == "P" else rgb.convert(mode)
    image.save(path)
    return path


def make_vtab(root: Path, task: str, counts: dict[str, int], num_classes: int) -> Path:
    """A VTAB-1K task folder: images/<n>.png and lists ``<relative path> <label>`` (label = n % classes).

    train800val200 is train800 then val200, as in the released trees.
    """
    folder = root / task
    lines: dict[str, list[str]] = {}
    index = 0
    for split in ("train800", "val200", "test"):
        lines[split] = []
        for _ in range(counts[split]):
            save_image(folder / "images" / f"{index:04d}.png", value=index % 256)
            lines[split].append(f"images/{index:04d}.png {index % num_classes}\n")
            index += 1
    lines["train800val200"] = lines["train800"] + lines["val200"]
    for split, rows in lines.items():
        (folder / f"{split}.txt").write_text("".join(rows))
    return folder
