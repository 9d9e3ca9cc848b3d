"""What every command shares: one-line errors without tracebacks, and the Rich consoles."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

console = Console()
err_console = Console(stderr=True)

EXIT_USER_ERROR = 2


def fail(message: str) -> typer.Exit:
    """Print ``error: message`` on stderr and return the Exit to raise; the message is printed as is
    (escaped, so that "pip install 'sttool[plots]'" or a path with brackets is not read as Rich markup)."""
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(EXIT_USER_ERROR)


def user_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a library ``SttoolError`` into a one-line message and a non-zero exit, no traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from sttool.errors import SttoolError

        try:
            return fn(*args, **kwargs)
        except SttoolError as err:
            raise fail(str(err)) from None

    return wrapper


def app_command(app: typer.Typer, fn: Callable[..., Any], **settings: Any) -> None:
    """Register ``fn`` as a subcommand with user-error handling."""
    app.command(**settings)(user_errors(fn))
