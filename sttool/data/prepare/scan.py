"""Check many files in parallel threads, keeping order and reporting progress.

Image decoding releases the GIL in PIL; video checks wait on decode worker processes, one per thread.
"""

from __future__ import annotations

import os
import queue
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal, TypeVar

from sttool.data.progress import Advance
from sttool.data.video.guarded import DecodeProcess, DecodeTimeout, GuardedBackend
from sttool.data.video.protocol import VideoError

T = TypeVar("T")
R = TypeVar("R")
Outcome = tuple[Literal["ok", "missing", "undecodable", "timeout"], Any]


def check_all(items: Sequence[T], check: Callable[[T], R], workers: int, advance: Advance) -> list[R]:
    """``check(item)`` for every item on ``workers`` threads; results in the order of ``items``."""
    results = []
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for future in [pool.submit(check, item) for item in items]:
            results.append(future.result())
            advance(1)
    return results


def probe_videos(paths: Sequence[str], backend: str, timeout: float, workers: int, advance: Advance) -> list[Outcome]:
    """Per path: ("ok", probe dict) or (kind of failure, reason); each probe bounded by ``timeout`` seconds
    in its own decode worker process, so a hanging file costs one timeout, never the scan."""
    idle: queue.Queue[DecodeProcess] = queue.Queue()
    processes = [DecodeProcess() for _ in range(max(1, workers))]
    for process in processes:
        idle.put(process)

    def check(path: str) -> Outcome:
        if not os.path.exists(path):
            return "missing", "file not found"
        process = idle.get()
        try:
            return "ok", GuardedBackend(backend, timeout, process).probe(path)
        except DecodeTimeout as err:
            return "timeout", str(err)
        except VideoError as err:
            return "undecodable", str(err)
        finally:
            idle.put(process)

    try:
        return check_all(paths, check, workers, advance)
    finally:
        for process in processes:
            process.close()
