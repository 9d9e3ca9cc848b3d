"""decord backend: fast random access, except where it is known to be wrong (then PyAV reads the file).

decord returns wrong frames on random access in MPEG-4 Part 2 streams with B-frames (off by +2,
ECOSYSTEM 2.6), so such streams are read sequentially with PyAV.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType

import numpy as np

from sttool.data.video.protocol import VideoError
from sttool.data.video.pyav_backend import PyAVVideo, StreamInfo, pyav_video, stream_info

# MPEG-4 Part 2 family (DivX, Xvid): decord's random access is wrong there when B-frames are present.
SEQUENTIAL_CODECS = ("mpeg4", "msmpeg4v1", "msmpeg4v2", "msmpeg4v3")

_torch_free = False


def declare_torch_free() -> None:
    """Mark this process as one that never imports torch (the decode worker), so decord may load alone."""
    global _torch_free
    _torch_free = True


def load_decord() -> ModuleType:
    """decord, imported on first use and, in any process that has torch, after torch.

    decord imported before torch, followed by CUDA use, can segfault (decord #293). The decode worker
    never imports torch, so it skips torch's 3 s and 650 MB start-up cost.
    """
    if not _torch_free:
        import torch  # noqa: F401
    import decord

    return decord


def _first_line(err: Exception) -> str:
    """decord's messages carry a native stack trace after the first line."""
    return (str(err).splitlines() or [type(err).__name__])[0]


@dataclass
class DecordVideo:
    """An open ``decord.VideoReader`` with the stream facts PyAV read beforehand."""

    path: str
    reader: object  # decord.VideoReader
    num_frames: int
    fps: float
    width: int
    height: int
    codec: str
    backend: str = "decord"

    def get_frames(self, indices: Sequence[int]) -> np.ndarray:
        decord = load_decord()
        try:
            self.reader.seek(0)  # as VideoMAE: start each batch from a known position
            return self.reader.get_batch([int(i) for i in indices]).asnumpy()  # (T, H, W, 3)
        except (RuntimeError, IndexError, decord.DECORDError) as err:
            raise VideoError(f"decord cannot decode frames {list(indices)}: {_first_line(err)}") from None


class DecordBackend:
    """decord's random access, except for streams where it returns wrong frames (read with PyAV)."""

    def open(self, path: str) -> PyAVVideo | DecordVideo:
        return self.open_stream(path, stream_info(path))

    def open_stream(self, path: str, info: StreamInfo) -> PyAVVideo | DecordVideo:
        if info.codec in SEQUENTIAL_CODECS and info.has_b_frames:
            return pyav_video(path, info, "pyav (mpeg4 with B-frames: decord's random access is wrong)")
        try:
            decord = load_decord()
        except ImportError:
            raise VideoError("decord is not installed (it has wheels for Linux x86_64 only); use video_backend: pyav") from None
        try:
            reader = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=1)
            return DecordVideo(path, reader, len(reader), float(reader.get_avg_fps()), info.width, info.height, info.codec)
        except (RuntimeError, decord.DECORDError) as err:
            raise VideoError(f"decord cannot open: {_first_line(err)}") from None
