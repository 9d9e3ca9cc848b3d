"""How long library work reports progress without printing: one protocol, rendered by the caller.

The library calls ``progress.task(label, total)`` for each stage (an epoch, a data set, a scan),
``task.advance(n, **fields)`` as work is done and ``progress.note(text)`` for a line worth keeping.
Field values may be zero-argument callables, so a value that costs a device sync (a loss) is only
computed when a renderer shows it. The Rich bar and the plain periodic lines live in ``sttool.cli``;
``SILENT`` is the default for library calls.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

Field = str | float | int | Callable[[], str | float | int]


class Task(Protocol):
    def advance(self, n: int = 1, **fields: Field) -> None: ...

    def close(self) -> None: ...


class Progress(Protocol):
    def task(self, label: str, total: int, done: int = 0) -> Task: ...

    def note(self, message: str) -> None: ...


class _SilentTask:
    def advance(self, n: int = 1, **fields: Field) -> None:
        pass

    def close(self) -> None:
        pass


class Silent:
    """Reports nothing."""

    def task(self, label: str, total: int, done: int = 0) -> Task:
        return _SilentTask()

    def note(self, message: str) -> None:
        pass


SILENT: Progress = Silent()


def field_value(value: Field) -> str | float | int:
    """A field as shown: callables are called now."""
    return value() if callable(value) else value
