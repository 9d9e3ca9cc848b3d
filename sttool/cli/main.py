"""The ``sttool`` command: thin Typer commands that parse arguments and call the library.

Heavy imports (torch, timm) happen inside the commands so that ``sttool --help`` stays fast.
"""

from __future__ import annotations

import typer

from sttool import __version__
from sttool.cli.bench import bench
from sttool.cli.common import app_command
from sttool.cli.env import env
from sttool.cli.evaluate import evaluate
from sttool.cli.finetune import finetune, sweep
from sttool.cli.inference import export, predict
from sttool.cli.prepare import prepare_app
from sttool.cli.profile import profile
from sttool.cli.visualize import visualize_app

app = typer.Typer(
    name="sttool",
    help="Adapt pre-trained Vision Transformers cheaply: Sparse-Tuning, Dense Adapters, early exits.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"sttool {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """sttool: Sparse-Tuning for Vision Transformers, from one command."""




app.add_typer(prepare_app, name="prepare")
app_command(app, finetune, context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
app_command(app, evaluate)
app_command(app, sweep, context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
app_command(app, profile)
app_command(app, bench, context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
app_command(app, predict)
app_command(app, export)
app.add_typer(visualize_app, name="visualize")
app_command(app, env)
