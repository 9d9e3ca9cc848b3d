"""Video backends: what every backend offers and the one error they raise (``VideoError``), PyAV and
decord, choosing one (``auto``: decord, falling back to PyAV where decord is missing or fails on a
file) and probing a video the way training will read it.

PyAV decodes sequentially and is exact on every stream; decord and torchcodec seek fast but return
wrong frames on MPEG-4 Part 2 with B-frames (measured with stripe-coded frames, torchcodec 0.17 with
FFmpeg 5.1, decord 0.6), so such streams always go through PyAV.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Protocol

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
    reader: Any  # decord.VideoReader
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


def load_torchcodec() -> ModuleType:
    """torchcodec's decoders (PyTorch's own video decoder; it needs FFmpeg's libraries from the system)."""
    try:
        from torchcodec import decoders
    except (ImportError, RuntimeError, OSError) as err:  # a missing FFmpeg raises RuntimeError or OSError on import
        raise ImportError(f"torchcodec cannot load: {_first_line(err)}") from None
    return decoders


@dataclass
class TorchCodecVideo:
    """An open ``torchcodec`` decoder in exact seek mode (it scans the file once, so every index is exact)."""

    path: str
    decoder: Any  # torchcodec.decoders.VideoDecoder
    num_frames: int
    fps: float
    width: int
    height: int
    codec: str
    backend: str = "torchcodec"

    def get_frames(self, indices: Sequence[int]) -> np.ndarray:
        try:
            frames = self.decoder.get_frames_at([int(i) for i in indices]).data  # (T, H, W, 3) uint8 tensor
        except (RuntimeError, IndexError, ValueError) as err:
            raise VideoError(f"torchcodec cannot decode frames {list(indices)}: {_first_line(err)}") from None
        return frames.numpy()


class TorchCodecBackend:
    """torchcodec, the decoder PyTorch maintains (a CPU wheel; FFmpeg 4 to 7 from the system)."""

    def open(self, path: str) -> TorchCodecVideo | PyAVVideo:
        info = stream_info(path)  # missing and unreadable files fail here, as for every backend
        if info.codec in SEQUENTIAL_CODECS and info.has_b_frames:
            return pyav_video(path, info, "pyav (mpeg4 with B-frames: torchcodec's random access is wrong)")
        try:
            decoders = load_torchcodec()
        except ImportError as err:
            raise VideoError(f"{err}; pip install 'sttool[torchcodec]' and FFmpeg (apt install ffmpeg), or use video_backend: pyav") from None
        try:
            decoder = decoders.VideoDecoder(path, seek_mode="exact", dimension_order="NHWC", num_ffmpeg_threads=1)
        except (RuntimeError, ValueError) as err:
            raise VideoError(f"torchcodec cannot open: {_first_line(err)}") from None
        meta = decoder.metadata
        count = int(meta.num_frames or 0)
        return TorchCodecVideo(path, decoder, count, float(meta.average_fps or 0.0), int(meta.width or 0),
                               int(meta.height or 0), str(meta.codec or "?"))


BACKENDS = ("auto", "torchcodec", "decord", "pyav")


@dataclass
class AutoVideo:
    """torchcodec or decord first; the same file through PyAV if it fails on it."""

    primary: VideoHandle

    def __getattr__(self, name: str):  # path, num_frames, fps, ...: those of the handle that opened the file
        if name == "primary" or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.primary, name)

    def get_frames(self, indices: Sequence[int]) -> np.ndarray:
        try:
            return self.primary.get_frames(indices)
        except VideoError as first:
            try:
                return PyAVBackend().open(self.primary.path).get_frames(indices)
            except VideoError as second:
                raise VideoError(f"{second} ({self.primary.backend}: {first})") from None


class AutoBackend:
    """The best backend installed: torchcodec (maintained, exact), else decord where it works, else PyAV."""

    def open(self, path: str) -> VideoHandle:
        info = stream_info(path)  # a file PyAV cannot even open is bad for every backend
        if torchcodec_available():
            try:
                return AutoVideo(TorchCodecBackend().open(path))
            except VideoError:
                return pyav_video(path, info, "pyav (torchcodec failed to open it)")
        try:
            load_decord()
        except ImportError:
            return pyav_video(path, info, "pyav")
        try:
            return AutoVideo(DecordBackend().open_stream(path, info))
        except VideoError:
            return pyav_video(path, info, "pyav (decord failed to open it)")


def torchcodec_available() -> bool:
    try:
        load_torchcodec()
    except ImportError:
        return False
    return True


def make_backend(name: str) -> VideoBackend:
    """The in-process backend called ``name`` (auto, torchcodec, decord or pyav)."""
    if name == "torchcodec":
        return TorchCodecBackend()
    if name == "pyav":
        return PyAVBackend()
    if name == "decord":
        return DecordBackend()
    if name == "auto":
        return AutoBackend()
    raise ValueError(f"unknown video backend '{name}'; valid: {', '.join(BACKENDS)}")


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
