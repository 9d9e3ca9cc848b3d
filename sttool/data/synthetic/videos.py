"""The synthetic video set: one shape moving in one of 8 directions; the direction is the class.

A single frame cannot tell the classes apart: the start is uniform on the torus (the object wraps
around the edges), so the position in every frame is uniform whatever the direction, and shape kind,
size, colour, rotation, speed and background are drawn independently of the class (``render_clips``).
Only motion across frames separates them, and a horizontal flip changes the class (``hflip`` is off).

Layout: ``ROOT/videos/clips/{split}/<direction>/<nnnnn>.avi`` (lossless FFV1, see ``video.write``),
list files ``ROOT/videos/{train,val,test}.txt`` (``clips/... <label>``), ``classes.txt`` and ``info.json``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import torch

from sttool.data.synthetic.images import CHUNK, SPLITS, SetReport, chunk_generator, write_info
from sttool.data.synthetic.render import render_clips
from sttool.data.video.write import LOSSLESS_SUFFIX, write_video

# Class c moves at c * 45 degrees; image y points down, so 90 degrees is "down".
DIRECTIONS = ("right", "down-right", "down", "down-left", "left", "up-left", "up", "up-right")
FPS = 8


def write_video_set(
    out: Path,
    seed: int,
    size: int,
    num_frames: int,
    per_class: tuple[int, int, int],
    advance: Callable[[int], None] | None = None,
) -> SetReport:
    """Render and write the motion video set with its list files; ``advance(n)`` reports progress."""
    start = time.perf_counter()
    root = out / "videos"
    root.mkdir(parents=True, exist_ok=True)
    counts = {}
    for split, count in zip(SPLITS, per_class, strict=True):
        lines = []
        for label, name in enumerate(DIRECTIONS):
            for first in range(0, count, CHUNK):
                chunk = min(CHUNK, count - first)
                clips, _ = render_clips(torch.full((chunk,), label), size, num_frames, chunk_generator(seed, "motion", split, label, first // CHUNK))
                for offset, frames in enumerate(clips.permute(0, 1, 3, 4, 2).numpy()):  # (T, S, S, 3) each
                    relative = f"clips/{split}/{name}/{first + offset:05d}{LOSSLESS_SUFFIX}"
                    write_video(root / relative, frames, fps=FPS)
                    lines.append(f"{relative} {label}\n")
            if advance is not None:
                advance(count)
        (root / f"{split}.txt").write_text("".join(lines))
        counts[split] = len(lines)
    (root / "classes.txt").write_text("".join(f"{name}\n" for name in DIRECTIONS))
    options = {"seed": seed, "size": size, "num_frames": num_frames, "fps": FPS, "per_class": dict(zip(SPLITS, per_class, strict=True))}
    report = SetReport(str(root), "motion", list(DIRECTIONS), counts, 0.0, None, options)
    report.seconds = time.perf_counter() - start
    write_info(root, report)
    return report
