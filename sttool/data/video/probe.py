"""Check one video the way training will read it, and measure what a manifest records."""

from __future__ import annotations

from typing import Any

from sttool.data.video.backends import VideoBackend, VideoError, count_decodable


def probe(backend: VideoBackend, path: str) -> dict[str, Any]:
    """Open ``path`` with ``backend``, count the frames that really decode, and decode the first and
    last of them with ``backend``; raises VideoError when any step fails."""
    video = backend.open(path)
    decodable = count_decodable(path)
    if decodable == 0:
        raise VideoError("no decodable frames")
    frames = video.get_frames([0, decodable - 1])  # (2, H, W, 3)
    return {
        "num_frames": decodable,
        "reported_frames": int(video.num_frames),
        "fps": float(video.fps),
        "width": int(frames.shape[2]),
        "height": int(frames.shape[1]),
        "codec": video.codec,
        "backend": video.backend,
    }
