"""Faults a run survives or reports clearly: Ctrl-C/SIGTERM, non-finite loss, GPU out of memory."""

from __future__ import annotations

import signal
import threading
from types import FrameType

from sttool.errors import SttoolError


class StopRequest:
    """Turns the first SIGINT or SIGTERM into a request to checkpoint and stop; a second Ctrl-C aborts."""

    def __init__(self) -> None:
        self.requested = False
        self.signal_name = ""
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True
        self.signal_name = signal.Signals(signum).name


class NonFiniteLoss(SttoolError):
    """The loss became NaN or infinite; the run stops without overwriting the last good checkpoint."""


def out_of_memory_message(micro_batch: int, accum_steps: int) -> str:
    return (
        f"GPU out of memory with {micro_batch} samples per process and step; keep the global batch with "
        f"train.accum_steps={accum_steps * 2}, or lower train.batch_size"
    )
