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


EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it


def user_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a library ``SttoolError``, a full disk or a denied write into a one-line message and a non-zero
    exit, and Ctrl-C or SIGTERM outside training (which checkpoints itself) into a one-line note: no traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        import signal
        import threading

        from sttool.errors import SttoolError
        from sttool.runs.folder import DISK_ERRORS, disk_error

        def terminate(signum: int, frame: object) -> None:
            raise KeyboardInterrupt

        main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGTERM, terminate) if main else None
        try:
            return fn(*args, **kwargs)
        except SttoolError as err:
            raise fail(str(err)) from None
        except OSError as err:
            if err.errno not in DISK_ERRORS:
                raise
            raise fail(str(disk_error(err, err.filename or "a file"))) from None
        except KeyboardInterrupt:
            err_console.print("stopped: interrupted before the command finished; files it was writing are left as they "
                              "were (every file sttool writes is replaced whole, or not at all)", highlight=False)
            raise typer.Exit(EXIT_INTERRUPTED) from None
        finally:
            if main:
                signal.signal(signal.SIGTERM, previous)

    return wrapper


def app_command(app: typer.Typer, fn: Callable[..., Any], **settings: Any) -> None:
    """Register ``fn`` as a subcommand with user-error handling."""
    app.command(**settings)(user_errors(fn))
