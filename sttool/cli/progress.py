"""Progress for long scans: Rich bars on a terminal, plain periodic lines otherwise (logs, CI).

Rich prints nothing until the end when stdout is not a terminal, so a silent job would look hung.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import typer

from sttool.cli.common import console

LOG_EVERY_S = 30.0


def _log_lines(label: str, total: int) -> Callable[[int], None]:
    """Print ``label: done/total`` at each tenth of the way, every 30 s at most apart, and at the end."""
    state = {"done": 0, "tenth": 0, "last": time.monotonic()}

    def advance(n: int) -> None:
        state["done"] += n
        tenth = state["done"] * 10 // max(total, 1)
        now = time.monotonic()
        if tenth > state["tenth"] or now - state["last"] >= LOG_EVERY_S or state["done"] >= total:
            state["tenth"], state["last"] = tenth, now
            typer.echo(f"{label}: {state['done']}/{total} ({100 * state['done'] // max(total, 1)}%)")

    return advance


@contextmanager
def progress_reporter() -> Iterator[Callable[[str, int], Callable[[int], None]]]:
    """Yield ``start(label, total) -> advance(n)`` for the library's ``progress`` argument."""
    if not console.is_terminal:
        yield _log_lines
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console) as bars:

        def start(label: str, total: int) -> Callable[[int], None]:
            task = bars.add_task(label, total=total)
            return lambda n: bars.advance(task, n)

        yield start
