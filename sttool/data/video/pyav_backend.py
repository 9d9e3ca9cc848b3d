"""PyAV backend: sequential decoding, frame-exact, with FFmpeg bundled in the wheel.

Also the source of stream metadata (codec, size, frame count) for every backend, and the honest
count of frames that really decode.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sttool.data.video.protocol import VideoError


@dataclass
class StreamInfo:
    """What the container says about its first video stream (read by PyAV without decoding)."""

    codec: str
    width: int
    height: int
    fps: float
    frames: int  # 0 when the container does not store a count (Matroska, WebM)
    duration: float | None  # seconds
    has_b_frames: bool


def _reason(err: Exception) -> str:
    """FFmpeg's reason without the path it repeats (the caller names the file)."""
    return getattr(err, "strerror", None) or str(err)


def stream_info(path: str) -> StreamInfo:
    import av

    try:
        with av.open(path) as container:
            if not container.streams.video:
                raise VideoError("no video stream")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate or 0
            duration = float(stream.duration * stream.time_base) if stream.duration and stream.time_base else None
            if duration is None and container.duration:
                duration = container.duration / 1_000_000  # microseconds (AV_TIME_BASE)
            ctx = stream.codec_context
            return StreamInfo(ctx.name, ctx.width, ctx.height, float(rate), int(stream.frames or 0), duration, bool(ctx.has_b_frames))
    except FileNotFoundError:
        raise VideoError("file not found") from None
    except (av.FFmpegError, OSError) as err:
        raise VideoError(f"cannot open: {_reason(err)}") from None


@dataclass
class PyAVVideo:
    """Decodes from the start up to the last wanted frame; indices past the real end read the last frame."""

    path: str
    num_frames: int
    fps: float
    width: int
    height: int
    codec: str
    backend: str = "pyav"

    def get_frames(self, indices: Sequence[int]) -> np.ndarray:
        wanted = [int(i) for i in indices]
        if not wanted:
            return np.empty((0, self.height, self.width, 3), np.uint8)
        if min(wanted) < 0:
            raise VideoError(f"negative frame index in {wanted}")
        needed, last = set(wanted), max(wanted)
        picked: dict[int, np.ndarray] = {}
        count, tail = 0, None
        for count, frame in enumerate(decode_frames(self.path), start=1):
            tail = frame
            if count - 1 in needed:
                picked[count - 1] = frame.to_ndarray(format="rgb24")
            if count > last:
                break
        if tail is None:
            raise VideoError("no decodable frames")
        if last >= count:  # the container over-reported its length: clamp to the last real frame
            end = tail.to_ndarray(format="rgb24")
            picked.update({i: end for i in needed if i >= count})
        try:
            return np.stack([picked[i] for i in wanted])  # (T, H, W, 3)
        except ValueError as err:
            raise VideoError(f"frames differ in size: {err}") from None


def decode_frames(path: str) -> Iterator[Any]:
    """PyAV frames of the first video stream in order. A damaged packet is skipped, as players do; a
    read error ends the stream (a truncated file yields the frames before the cut)."""
    import av

    try:
        container = av.open(path)
    except (av.FFmpegError, OSError) as err:
        raise VideoError(f"cannot open: {_reason(err)}") from None
    with container:
        stream = container.streams.video[0]
        packets = container.demux(stream)  # ends with an empty packet that flushes the decoder
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                return
            except (av.FFmpegError, OSError):
                yield from _decode(stream, None)  # the file ends early: flush what the decoder holds
                return
            yield from _decode(stream, packet)


def _decode(stream: Any, packet: Any) -> list[Any]:
    import av

    try:
        return stream.decode(packet)
    except av.FFmpegError:
        return []


def count_decodable(path: str) -> int:
    """Frames that actually decode, counted sequentially (no colour conversion): the honest length."""
    return sum(1 for _ in decode_frames(path))


class PyAVBackend:
    """Sequential and frame-exact: the reference reader, and the fallback where decord is wrong or fails."""

    def open(self, path: str) -> PyAVVideo:
        info = stream_info(path)
        return pyav_video(path, info, "pyav")


def pyav_video(path: str, info: StreamInfo, backend: str) -> PyAVVideo:
    """A PyAV handle for a probed stream: frames as the container counts them, else duration x fps,
    else counted by decoding (Matroska/WebM may store neither)."""
    frames = info.frames
    if frames <= 0 and info.duration and info.fps:
        frames = round(info.duration * info.fps)
    if frames <= 0:
        frames = count_decodable(path)
    return PyAVVideo(path, frames, info.fps, info.width, info.height, info.codec, backend)
