"""The synthetic video set: one shape moving in one of 8 directions; the direction is the class.

A single frame cannot tell the classes apart: the start is uniform on the torus (the object wraps
around the edges), so the position in every frame is uniform whatever the direction, and shape kind,
size, colour, rotation, speed and background are drawn independently of the class. Only motion
across frames separates them, and a horizontal flip changes the class (``hflip`` is off by default).

Layout: ``ROOT/videos/clips/{split}/<direction>/<nnnnn>.avi`` (lossless FFV1, see ``video.write``),
list files ``ROOT/videos/{train,val,test}.txt`` (``clips/... <label>``), ``classes.txt`` and ``info.json``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from sttool.data.synthetic.canvas import background, composite, object_colour, shape_alpha
from sttool.data.synthetic.images import SPLITS, SetReport, sample_rng, write_info
from sttool.data.synthetic.shapes import SHAPES
from sttool.data.video.write import LOSSLESS_SUFFIX, write_video

# Class c moves at c * 45 degrees; image y points down, so 90 degrees is "down".
DIRECTIONS = ("right", "down-right", "down", "down-left", "left", "up-left", "up", "up-right")
VIDEO_RADIUS = (0.16, 0.24)  # share of the frame side
SPEED = (1.5, 2.5)  # pixels per frame at 64 px, scaled with the frame size
FPS = 8


def render_video(rng: np.random.Generator, direction: int, size: int, num_frames: int) -> tuple[np.ndarray, dict[str, Any]]:
    """Frames uint8 (T, S, S, 3) of a shape moving towards ``DIRECTIONS[direction]``, and what was drawn."""
    backdrop = background(rng, size)
    kind = str(rng.choice(list(SHAPES)))
    radius = rng.uniform(*VIDEO_RADIUS) * size
    start = rng.uniform(0.0, size, 2)
    heading = direction * np.pi / 4
    velocity = rng.uniform(*SPEED) * size / 64.0 * np.array([np.cos(heading), np.sin(heading)])
    rotation = rng.uniform(0.0, 2 * np.pi)
    colour = object_colour(rng, backdrop)
    centres = (start + velocity * np.arange(num_frames)[:, None]) % size  # (T, 2)
    frames = np.stack([composite(backdrop, shape_alpha(SHAPES[kind], size, (cx, cy), radius, rotation, wrap=True), colour) for cx, cy in centres])
    return frames, {"kind": kind, "colour": colour.tolist(), "centres": centres.tolist(), "radius": radius}


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
            for index in range(count):
                frames, _ = render_video(sample_rng(seed, "motion", split, label, index), label, size, num_frames)
                relative = f"clips/{split}/{name}/{index:05d}{LOSSLESS_SUFFIX}"
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
