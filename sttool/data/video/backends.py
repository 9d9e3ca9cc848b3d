"""Choosing a video backend: decord, PyAV, or ``auto`` (decord, falling back to PyAV where decord is
missing or fails on a file). Every failure is a ``VideoError``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sttool.data.video.decord_backend import DecordBackend, load_decord
from sttool.data.video.protocol import VideoBackend, VideoError, VideoHandle
from sttool.data.video.pyav_backend import PyAVBackend, pyav_video, stream_info

BACKENDS = ("auto", "decord", "pyav")


@dataclass
class AutoVideo:
    """decord first; the same file through PyAV if decord fails on it."""

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
                raise VideoError(f"{second} (decord: {first})") from None


class AutoBackend:
    """decord where it works, PyAV otherwise: the default, since decord is fast but not installable everywhere."""

    def open(self, path: str) -> VideoHandle:
        info = stream_info(path)  # a file PyAV cannot even open is bad for both backends
        try:
            load_decord()
        except ImportError:
            return pyav_video(path, info, "pyav")
        try:
            return AutoVideo(DecordBackend().open_stream(path, info))
        except VideoError:
            return pyav_video(path, info, "pyav (decord failed to open it)")


def make_backend(name: str) -> VideoBackend:
    """The in-process backend called ``name`` (auto, decord or pyav)."""
    if name == "pyav":
        return PyAVBackend()
    if name == "decord":
        return DecordBackend()
    if name == "auto":
        return AutoBackend()
    raise ValueError(f"unknown video backend '{name}'; valid: {', '.join(BACKENDS)}")
