"""Which frames of a video make a clip: pure functions of (frames in the video, clip length, mode, rng).

Training passes a numpy ``rng`` (random positions); evaluation passes None and a view number
(deterministic positions, ``views`` temporal clips spread over the video). Conventions follow
VideoMAE's ``kinetics.py`` / ``ssv2.py`` and DyT's ``video_datasets``:

- ``segment`` (TSN, SSv2): the video is cut into T equal segments (fractional lengths, so the tail is
  covered) and one frame is taken from each: uniformly at random in training, at offset
  ``(view + 0.5) / views`` of the segment at test time (the centre for one view). Videos shorter than
  T frames give sorted indices with repeats.
- ``dense`` (K400): T frames ``stride`` apart from a window start: random in training, centred for
  one test view, evenly spaced from the first to the last possible start for several. A video shorter
  than the window gets the largest stride that fits (DyT's clamp); one shorter than T frames repeats
  its last frame (VideoMAE's padding).
"""

from __future__ import annotations

from typing import Literal

import numpy as np


def segment_indices(num_frames: int, T: int, rng: np.random.Generator | None, view: int = 0, views: int = 1) -> np.ndarray:
    tick = num_frames / T
    offsets = rng.random(T) if rng is not None else np.full(T, (view + 0.5) / views)
    index = np.floor(tick * (np.arange(T) + offsets)).astype(np.int64)  # (T,)
    return np.minimum(index, num_frames - 1)  # guards float rounding at the very end


def dense_indices(
    num_frames: int, T: int, stride: int, rng: np.random.Generator | None, view: int = 0, views: int = 1
) -> np.ndarray:
    stride = max(1, min(stride, (num_frames - 1) // max(1, T - 1)))
    room = max(0, num_frames - ((T - 1) * stride + 1))  # possible window starts beyond the first
    if rng is not None:
        start = int(rng.integers(0, room + 1))
    elif views == 1:
        start = room // 2
    else:
        start = round(view * room / (views - 1))
    index = start + stride * np.arange(T, dtype=np.int64)  # (T,)
    return np.minimum(index, num_frames - 1)


def sample_frames(
    num_frames: int,
    T: int,
    mode: Literal["segment", "dense"],
    rng: np.random.Generator | None,
    stride: int = 4,
    view: int = 0,
    views: int = 1,
) -> np.ndarray:
    """Frame indices (T,) of one clip; ``rng`` None selects test-time view ``view`` of ``views``."""
    if num_frames < 1:
        raise ValueError(f"a video with {num_frames} frames has no clip")
    if T < 1 or not 0 <= view < views:
        raise ValueError(f"bad clip request: T={T}, view {view} of {views}")
    if mode == "segment":
        return segment_indices(num_frames, T, rng, view, views)
    if mode == "dense":
        return dense_indices(num_frames, T, stride, rng, view, views)
    raise ValueError(f"unknown sampling mode '{mode}' (valid: segment, dense)")
