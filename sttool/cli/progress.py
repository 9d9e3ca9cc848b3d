"""The two renderers of ``sttool.progress``: a Rich bar on a terminal, plain periodic lines otherwise.

Rich renders nothing until exit when its output is not a terminal (SLURM, nohup, CI), so a silent
job would look hung; there each task prints a line every ``log_every`` seconds and at its end.
Fields (loss, learning rate, speed) are read only when a line or a bar refresh shows them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.progress import Progress as RichBars

from sttool.progress import Field, Progress, Task, field_value

BAR_REFRESH_S = 0.5


def _format(fields: dict[str, Field]) -> str:
    return " ".join(f"{name} {field_value(value)}" for name, value in fields.items())


class _LineTask:
    def __init__(self, console: Console, label: str, total: int, done: int, every: float) -> None:
        self.console, self.label, self.total, self.done, self.every = console, label, total, done, every
        self.start, self.last, self.first = time.perf_counter(), time.perf_counter(), done

    def advance(self, n: int = 1, **fields: Field) -> None:
        self.done += n
        now = time.perf_counter()
        if now - self.last < self.every and self.done < self.total:
            return
        self.last = now
        rate = (self.done - self.first) / max(now - self.start, 1e-9)
        eta = (self.total - self.done) / rate if rate > 0 else 0.0
        text = _format(fields)
        share = 100 * self.done // max(self.total, 1)
        self.console.print(f"{self.label}: {self.done}/{self.total} ({share}%){' ' + text if text else ''} eta {eta:.0f}s",
                           highlight=False, soft_wrap=True)

    def close(self) -> None:
        pass


class LineProgress:
    """Plain lines: ``label: done/total (share%) fields eta``, every ``every`` seconds and when a task ends."""

    def __init__(self, console: Console, every: float = 10.0) -> None:
        self.console, self.every = console, every

    def task(self, label: str, total: int, done: int = 0) -> Task:
        return _LineTask(self.console, label, total, done, self.every)

    def note(self, message: str) -> None:
        self.console.print(message, highlight=False, soft_wrap=True)


class _BarTask:
    def __init__(self, bars: RichBars, label: str, total: int, done: int) -> None:
        self.bars, self.id = bars, bars.add_task(label, total=total, completed=done, fields="")
        self.total, self.done, self.last = total, done, 0.0

    def advance(self, n: int = 1, **fields: Field) -> None:
        now = time.perf_counter()
        self.done += n
        if fields and (now - self.last >= BAR_REFRESH_S or self.done >= self.total):
            self.last = now
            self.bars.update(self.id, advance=n, fields=_format(fields))
        else:
            self.bars.update(self.id, advance=n)

    def close(self) -> None:
        self.bars.remove_task(self.id)


class BarProgress:
    """A Rich bar per task (label, bar, done/total, fields, elapsed, remaining) and notes above them."""

    def __init__(self, bars: RichBars) -> None:
        self.bars = bars

    def task(self, label: str, total: int, done: int = 0) -> Task:
        return _BarTask(self.bars, label, total, done)

    def note(self, message: str) -> None:
        self.bars.console.print(message, highlight=False, soft_wrap=True)


@contextmanager
def progress_for(console: Console, every: float = 10.0, enabled: bool = True) -> Iterator[Progress]:
    """The renderer for ``console``: bars on a terminal, lines otherwise; silent when not ``enabled``."""
    from sttool.progress import SILENT

    if not enabled:
        yield SILENT
        return
    if not console.is_terminal:
        yield LineProgress(console, every)
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[fields]}"),
               TimeElapsedColumn(), TimeRemainingColumn())
    with RichBars(*columns, console=console) as bars:
        yield BarProgress(bars)
