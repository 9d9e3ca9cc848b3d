"""``sttool bench SUITE``: a suite's tasks x methods x seeds under the honest VTAB-1K protocol."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sttool.cli.common import console, err_console


def _list(text: str | None) -> list[str] | None:
    return [part.strip() for part in text.split(",") if part.strip()] if text else None


def bench(
    ctx: typer.Context,
    suite: Annotated[str, typer.Argument(help="micro-vtab, vtab, transfer, or a path to a suite.yaml.")],
    methods: Annotated[str | None, typer.Option(help="Comma-separated methods (default: the suite's default_methods).")] = None,
    seeds: Annotated[str, typer.Option(help="Comma-separated seeds, e.g. 0,1,2.")] = "0",
    tasks: Annotated[str | None, typer.Option(help="Comma-separated tasks (default: all, or the quick subset).")] = None,
    grid: Annotated[str | None, typer.Option(help="suite (the default; none with --quick): each method's grid, chosen on "
                                             "train800 -> val200; none: each method's fixed value; or KEY=v1,v2 for every method.")] = None,
    out: Annotated[Path | None, typer.Option(help="Output folder (default: runs/bench-<suite>).")] = None,
    quick: Annotated[bool, typer.Option(help="The suite's quick subset, its shorter training, each method's fixed value.")] = False,
    root: Annotated[str | None, typer.Option(help="Data folder in the VTAB-1K layout (default: the suite's root).")] = None,
    jobs: Annotated[int, typer.Option(help="Cells trained at once, one process each (threads split between them).")] = 1,
    set_: Annotated[list[str] | None, typer.Option("--set", "-s", help="Override for every run: key=value (repeatable).")] = None,
) -> None:
    """Run a benchmark suite: grid on train800 -> val200, final run on train800val200, test once. Resumable.
    Extra arguments key=value override every run's recipe (like --set)."""
    from sttool.bench import bench as run_bench
    from sttool.bench import load_suite
    from sttool.cli.progress import progress_for
    from sttool.errors import SttoolError

    loaded = load_suite(suite)
    try:
        seed_list = [int(s) for s in _list(seeds) or []]
    except ValueError:
        raise SttoolError(f"--seeds '{seeds}': expected comma-separated integers, e.g. 0,1,2") from None
    folder = out or Path("runs") / f"bench-{loaded.name}{'-quick' if quick else ''}"
    with progress_for(err_console) as progress:
        report = run_bench(loaded, folder, _list(methods), seed_list, _list(tasks), grid, quick, root, jobs,
                           [*(set_ or []), *ctx.args], progress)
    console.print((folder / "summary.md").read_text(), markup=False, highlight=False, soft_wrap=True)
    console.print(f"wrote {folder / 'results.csv'}, {folder / 'summary.md'}"
                  + (f", {report['plot']}" if report["plot"] else ""), markup=False, highlight=False)
