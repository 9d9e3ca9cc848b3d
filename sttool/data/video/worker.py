"""The decode worker: a child process that opens and decodes videos on request (``python -m`` this module).

decord can hang in native code holding the GIL (decord #373) or crash outright, which no thread or
signal in the training process can interrupt; in a separate process the parent can give up after a
deadline and kill it. Without torchcodec the worker never imports torch (see ``backends.load_decord``)
and starts in about 0.3 s; torchcodec is a torch extension, so where it is installed the worker loads it
(and torch) before it says it is ready, about 3 s once, outside any file's deadline. Protocol on stdin/stdout: a 4-byte little-endian length and a JSON object each way; a
reply with ``nbytes`` is followed by that many raw bytes (uint8 frames), so nothing is pickled.
Any other exception ends the worker; the parent reports that as this file's error and starts another.
"""

from __future__ import annotations

import json
import math
import os
import signal
import struct
import sys
from typing import Any, BinaryIO

from sttool.data.video.backends import (
    VideoError,
    VideoHandle,
    declare_torch_free,
    make_backend,
    probe,
    torchcodec_available,
)

ALARM_MARGIN_S = 5  # the worker kills itself this long after a deadline, should the parent be gone


def send(stream: BinaryIO, header: dict[str, Any], payload: bytes = b"") -> None:
    data = json.dumps({**header, "nbytes": len(payload)}).encode()
    stream.write(struct.pack("<I", len(data)) + data + payload)
    stream.flush()


def _read_exact(stream: BinaryIO, size: int) -> bytes | None:
    data = stream.read(size)
    return data if data is not None and len(data) == size else None


def _handle(request: dict[str, Any], cache: dict[tuple[str, str], VideoHandle]) -> tuple[dict[str, Any], bytes]:
    path, backend = request["path"], request["backend"]
    if request["op"] == "probe":
        return {"ok": True, **probe(make_backend(backend), path)}, b""
    key = (path, backend)
    if key not in cache:
        cache.clear()  # keep one open video: the one the next request most likely reads again
        cache[key] = make_backend(backend).open(path)
    video = cache[key]
    if request["op"] == "open":
        meta = {name: getattr(video, name) for name in ("num_frames", "fps", "width", "height", "codec", "backend")}
        return {"ok": True, **meta}, b""
    frames = video.get_frames(request["indices"])  # (T, H, W, 3) uint8
    return {"ok": True, "shape": list(frames.shape)}, frames.tobytes()


def main() -> None:
    declare_torch_free()
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # whatever a library prints goes to stderr, never into the protocol
    inp = sys.stdin.buffer
    cache: dict[tuple[str, str], VideoHandle] = {}
    torchcodec_available()  # import it now, not inside the first file's deadline
    send(out, {"ok": True, "ready": True})
    while (head := _read_exact(inp, 4)) is not None:
        body = _read_exact(inp, struct.unpack("<I", head)[0])
        if body is None:
            break
        request = json.loads(body)
        # SIGALRM's default action ends the process even while native code holds the GIL: an
        # orphaned worker stuck in a decode cannot outlive its deadline for long.
        signal.alarm(math.ceil(request["timeout"]) + ALARM_MARGIN_S)
        try:
            header, payload = _handle(request, cache)
        except VideoError as err:
            header, payload = {"ok": False, "error": str(err)}, b""
        except (ValueError, OSError, RuntimeError, MemoryError) as err:  # what decoders raise on odd files
            header, payload = {"ok": False, "error": f"{type(err).__name__}: {err}"}, b""
        signal.alarm(0)
        send(out, header, payload)


if __name__ == "__main__":
    main()
