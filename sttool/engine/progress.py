"""Training progress: a Rich bar on a terminal, plain log lines every few seconds otherwise.

Rich renders nothing until exit when stdout is not a terminal (SLURM, nohup, CI), so the same
updates become periodic lines there. Values are read from the device only when they are shown.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class TrainingProgress:
    """Epoch and step progress with loss, learning rate, images/s and ETA; silent when disabled."""

    def __init__(self, epochs: int, enabled: bool, log_every: float, console: Console | None = None) -> None:
        self.epochs = epochs
        self.enabled = enabled
        self.log_every = log_every
        self.console = console or Console(stderr=True)
        self.interactive = self.console.is_terminal
        self.bar: Progress | None = None
        self.task = None
        self.last_shown = 0.0
        self.epoch = 0
        self.steps = 0

    def __enter__(self) -> TrainingProgress:
        if self.enabled and self.interactive:
            self.bar = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]}  lr {task.fields[lr]}  {task.fields[speed]}"),
                TimeElapsedColumn(), TimeRemainingColumn(), console=self.console,
            )
            self.bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)

    def start_epoch(self, epoch: int, steps: int, done: int = 0) -> None:
        self.epoch, self.steps = epoch, steps
        self.epoch_start = time.perf_counter()
        self.images = 0
        if self.bar is not None:
            if self.task is not None:
                self.bar.remove_task(self.task)
            self.task = self.bar.add_task(f"epoch {epoch + 1}/{self.epochs}", total=steps, completed=done,
                                          loss="-", lr="-", speed="")

    def step(self, step: int, images: int, loss: Callable[[], float], lr: float) -> None:
        """Record a finished optimiser step; ``loss`` is called (a device sync) only when shown."""
        self.images += images
        now = time.perf_counter()
        due = now - self.last_shown >= (0.5 if self.bar is not None else self.log_every)
        if not self.enabled or not (due or step + 1 == self.steps):
            if self.bar is not None:
                self.bar.update(self.task, completed=step + 1)
            return
        self.last_shown = now
        speed = self.images / max(now - self.epoch_start, 1e-9)
        if self.bar is not None:
            self.bar.update(self.task, completed=step + 1, loss=f"{loss():.4f}", lr=f"{lr:.2e}", speed=f"{speed:.1f} img/s")
        else:
            eta = (self.steps - step - 1) * (now - self.epoch_start) / max(step + 1, 1)
            self.console.print(
                f"epoch {self.epoch + 1}/{self.epochs} step {step + 1}/{self.steps} loss {loss():.4f} "
                f"lr {lr:.2e} {speed:.1f} img/s eta {eta:.0f}s", highlight=False,
            )

    def note(self, message: str) -> None:
        if self.enabled:
            self.console.print(message, highlight=False)
