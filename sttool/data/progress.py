"""How long-running library work reports progress without printing: the caller passes a factory."""

from __future__ import annotations

from collections.abc import Callable

Advance = Callable[[int], None]
# ``progress(label, total)`` starts a stage and returns the function that advances it by n items.
Progress = Callable[[str, int], Advance]


def no_progress(label: str, total: int) -> Advance:
    return lambda n: None
