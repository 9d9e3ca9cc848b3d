"""What every video backend offers, and the one error type they raise."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np


class VideoError(Exception):
    """A video that cannot be opened or decoded; the message says why."""


class VideoHandle(Protocol):
    """An opened video. ``num_frames`` is what the container reports (the decodable count may be lower)."""

    path: str
    num_frames: int
    fps: float
    width: int
    height: int
    codec: str
    backend: str

    def get_frames(self, indices: Sequence[int]) -> np.ndarray:
        """Frames at ``indices`` (any order, repeats allowed) as uint8 (T, H, W, 3) RGB."""
        ...


class VideoBackend(Protocol):
    """Opens videos; the handle says which decoder actually reads the file (``backend``)."""

    def open(self, path: str) -> VideoHandle: ...
