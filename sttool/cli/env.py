"""``sttool env``: what a bug report needs (versions, devices, bf16, video backends, extras, caches)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from sttool.cli.common import console


def env(as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False) -> None:
    """Print versions, devices, the CPU's kernels and bf16, the video backends that load and the caches.

    Example: sttool env --json > env.json   (attach it to a bug report)
    """
    from rich.table import Table

    from sttool.runs.doctor import doctor_report

    report = doctor_report()
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    table = Table(title="sttool env", show_header=False)
    table.add_column("")
    table.add_column("")
    for key, value in report.items():
        if isinstance(value, dict):
            value = "\n".join(f"{k}: {v}" for k, v in value.items())
        elif isinstance(value, list):
            value = "\n".join(value) or "none"
        table.add_row(key, str(value))
    console.print(table, markup=False, highlight=False)
