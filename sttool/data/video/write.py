"""Write videos that decode to exactly the frames written, with any backend, byte-identical across runs.

FFV1 (FFmpeg's own lossless intra-only codec) on RGB (``bgr0``) in AVI: every frame is a key frame,
so random access is exact in decord and PyAV alike; it needs no GPL encoder, AVI stores the frame
count, and ``fflags=+bitexact`` leaves out the muxer version so the bytes depend only on the frames.
(Checked with PyAV 18.1 / decord 0.6.0: FFV1, HuffYUV, UtVideo and libx264rgb at qp 0 round-trip
exactly in both; libx264 yuv444p at qp 0 does not, its RGB to YUV conversion is lossy.)
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

LOSSLESS_CODEC = "ffv1"
LOSSLESS_PIX_FMT = "bgr0"
LOSSLESS_SUFFIX = ".avi"


def write_video(
    path: str | Path,
    frames: Iterable[np.ndarray],
    fps: int = 8,
    codec: str = LOSSLESS_CODEC,
    pix_fmt: str = LOSSLESS_PIX_FMT,
    options: dict[str, str] | None = None,
    container_options: dict[str, str] | None = None,
) -> None:
    """Encode uint8 (H, W, 3) RGB frames to ``path`` (container from the suffix); lossless by default.

    ``codec``, ``pix_fmt``, ``options`` (encoder) and ``container_options`` (muxer) make other files,
    e.g. MPEG-4 with B-frames or H.264 with the index first (``movflags=+faststart``) for tests.
    """
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", options={"fflags": "+bitexact", **(container_options or {})}) as container:
        stream: Any = None  # av's VideoStream
        for frame in frames:
            if stream is None:
                stream = container.add_stream(codec, rate=fps, options={"threads": "1", **(options or {})})
                stream.height, stream.width = frame.shape[:2]
                stream.pix_fmt = pix_fmt
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                container.mux(packet)
        if stream is None:
            raise ValueError(f"no frames to write to {path}")
        for packet in stream.encode():
            container.mux(packet)
