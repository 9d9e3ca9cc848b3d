"""Check one video the way training will read it, and measure what a manifest records."""

from __future__ import annotations

from typing import Any

from sttool.data.video.protocol import VideoBackend
from sttool.data.video.pyav_backend import count_decodable


def probe(backend: VideoBackend, path: str) -> dict[str, Any]:
    """Open ``path`` with ``backend``, count the frames that really decode, and decode the first and
    last of them with ``backend``. ``num_frames`` 0: the stream has no frame; VideoError: unreadable."""
    video = backend.open(path)
    decodable = count_decodable(path)
    info = {
        "num_frames": decodable,
        "reported_frames": int(video.num_frames),
        "fps": float(video.fps),
        "width": int(video.width),
        "height": int(video.height),
        "codec": video.codec,
        "backend": video.backend,
    }
    if decodable > 0:
        frames = video.get_frames([0, decodable - 1])  # (2, H, W, 3)
        info["height"], info["width"] = int(frames.shape[1]), int(frames.shape[2])
    return info
