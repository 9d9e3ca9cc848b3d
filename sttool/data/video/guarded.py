"""Decoding with a deadline: every open and decode runs in a worker process that is killed when late.

Each process (and thread) that reads videos gets its own worker (``worker.py``), started on first use
and restarted after a timeout or a crash. DataLoader workers are daemonic and may not use
multiprocessing children, so the worker is a plain ``subprocess``.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sttool.data.video.backends import VideoError

STARTUP_TIMEOUT_S = 60.0


class DecodeTimeout(VideoError):
    """The worker did not answer within the deadline; it was killed."""


class DecodeProcess:
    """One decode worker and the length-prefixed pipe protocol to it."""

    def __init__(self) -> None:
        self.owner = os.getpid()
        self._proc: subprocess.Popen | None = None
        atexit.register(self.close)

    def request(self, message: dict[str, Any], timeout: float) -> tuple[dict[str, Any], bytes]:
        """Send ``message`` and return the reply header and payload, or raise VideoError / DecodeTimeout."""
        proc = self._running()
        data = json.dumps({**message, "timeout": timeout}).encode()
        assert proc.stdin is not None  # started with stdin=PIPE
        try:
            proc.stdin.write(struct.pack("<I", len(data)) + data)
            proc.stdin.flush()
        except BrokenPipeError:
            raise self._died() from None
        deadline = time.monotonic() + timeout
        size = struct.unpack("<I", self._read(4, deadline, timeout))[0]
        header = json.loads(self._read(size, deadline, timeout))
        payload = self._read(header["nbytes"], deadline, timeout)
        if not header["ok"]:
            raise VideoError(header["error"])
        return header, payload

    def _running(self) -> subprocess.Popen:
        if self._proc is not None and self._proc.poll() is None:
            return self._proc
        root = str(Path(__file__).resolve().parents[3])  # the folder holding the sttool package
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (root, os.environ.get("PYTHONPATH"))))}
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "sttool.data.video.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,  # FFmpeg's complaints about bad files; errors come back as replies
            env=env,
        )
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        try:
            size = struct.unpack("<I", self._read(4, deadline, STARTUP_TIMEOUT_S))[0]
            self._read(size, deadline, STARTUP_TIMEOUT_S)  # the "ready" message
        except VideoError as err:
            raise VideoError(f"the decode worker (python -m sttool.data.video.worker) did not start: {err}") from None
        assert self._proc is not None
        return self._proc

    def _read(self, size: int, deadline: float, timeout: float) -> bytes:
        assert self._proc is not None and self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        parts: list[bytes] = []
        while size > 0:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                self.close()
                raise DecodeTimeout(f"no answer within {timeout:g} s (data.decode_timeout); the decoder was stopped")
            chunk = os.read(fd, min(size, 1 << 20))
            if not chunk:
                raise self._died()
            parts.append(chunk)
            size -= len(chunk)
        return b"".join(parts)

    def _died(self) -> VideoError:
        assert self._proc is not None
        code = self._proc.wait()
        self._proc = None
        how = f"signal {-code}" if code < 0 else f"exit code {code}"
        return VideoError(f"the decoder process died ({how}) on this file")

    def close(self) -> None:
        """Stop the worker (only from the process that started it; forked children leave it alone)."""
        if self._proc is not None and os.getpid() == self.owner:
            self._proc.kill()
            self._proc.wait()
        self._proc = None


_local = threading.local()


def decode_process() -> DecodeProcess:
    """This process's and thread's decode worker (a forked DataLoader worker starts its own)."""
    proc = getattr(_local, "proc", None)
    if proc is None or proc.owner != os.getpid():
        proc = _local.proc = DecodeProcess()
    return proc


@dataclass
class RemoteVideo:
    """A video opened in the worker; ``get_frames`` asks the worker again, under the same deadline."""

    path: str
    num_frames: int
    fps: float
    width: int
    height: int
    codec: str
    backend: str
    inner: str
    timeout: float

    def get_frames(self, indices: Sequence[int]) -> np.ndarray:
        message = {"op": "frames", "path": self.path, "backend": self.inner, "indices": [int(i) for i in indices]}
        header, payload = decode_process().request(message, self.timeout)
        return np.frombuffer(payload, np.uint8).reshape(header["shape"]).copy()  # (T, H, W, 3)


@dataclass
class GuardedBackend:
    """The backend ``inner`` (auto, decord or pyav) run in the decode worker, each call bounded by ``timeout``."""

    inner: str
    timeout: float
    process: DecodeProcess | None = None  # None: this process's and thread's own worker

    def _worker(self) -> DecodeProcess:
        return self.process if self.process is not None else decode_process()

    def open(self, path: str) -> RemoteVideo:
        header, _ = self._worker().request({"op": "open", "path": path, "backend": self.inner}, self.timeout)
        return RemoteVideo(path, header["num_frames"], header["fps"], header["width"], header["height"], header["codec"],
                           header["backend"], inner=self.inner, timeout=self.timeout)

    def probe(self, path: str) -> dict[str, Any]:
        """``probe.probe`` in the worker: decodable frame count, fps, size; raises VideoError."""
        header, _ = self._worker().request({"op": "probe", "path": path, "backend": self.inner}, self.timeout)
        return {k: v for k, v in header.items() if k not in ("ok", "nbytes")}
