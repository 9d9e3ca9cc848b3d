"""``sttool finetune`` (parse the recipe and overrides, call the engine, print the results) and
``sttool sweep`` (the same tuning budget for every method: chosen on validation, tested once).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from sttool.cli.common import EXIT_INTERRUPTED, console, err_console


def finetune(
    ctx: typer.Context,
    recipe: Annotated[Path, typer.Argument(help="Recipe YAML, e.g. recipes/ssv2.yaml.")],
    set_: Annotated[list[str] | None, typer.Option("--set", "-s", help="Override: key=value (repeatable), e.g. optim.lr=1e-3.")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in the recipe's output folder.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace the run in the recipe's output folder (its recipe, metrics, checkpoints, plots).")] = False,
    print_config: Annotated[bool, typer.Option("--print-config", help="Print the resolved recipe and exit.")] = False,
) -> None:
    """Fine-tune a model from a recipe. Extra arguments key=value override the recipe (like --set)."""
    from sttool.config.schema import to_dict
    from sttool.runs.recipe import load_recipe

    overrides = [*(set_ or []), *ctx.args]
    loaded = load_recipe(recipe, overrides)
    if print_config:
        import yaml

        typer.echo(yaml.safe_dump(to_dict(loaded), sort_keys=False).rstrip())
        return
    from sttool.cli.progress import progress_for
    from sttool.engine import finetune as run_finetune

    with progress_for(err_console, loaded.train.log_every) as progress:
        results = run_finetune(loaded, resume=resume, progress=progress, overwrite=overwrite)
    if results.get("status") == "interrupted":
        raise typer.Exit(EXIT_INTERRUPTED)
    plot_curves(loaded.run_dir)
    _print_results(loaded.run_dir, results)


def plot_curves(run_dir: Path) -> None:
    """The run's training curves, or a note saying how to get them (matplotlib is optional)."""
    from sttool.errors import SttoolError
    from sttool.runs.folder import RunDir
    from sttool.visualize.plots import plot_run

    try:
        plot_run(RunDir(run_dir))
    except SttoolError as err:
        err_console.print(f"note: no training curves written; {err}", highlight=False, markup=False)


def _print_results(run_dir: Path, results: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title=f"{results['name']}: {run_dir}")
    table.add_column("")
    table.add_column("value", justify="right")
    if results.get("best"):
        table.add_row("best val top-1", f"{results['best']['top1']:.2f}% (epoch {results['best']['epoch']})")
    if "test" in results:
        table.add_row(f"test top-1 ({results['checkpoint']})", f"{results['test']['top1']:.2f}%")
        table.add_row("test top-5", f"{results['test']['top5']:.2f}%")
    table.add_row("GFLOPs", f"{results['gflops']:.3f}")
    table.add_row("trainable parameters", f"{results['params']['trainable'] / 1e6:.3f} M")
    console.print(table)


def sweep(
    ctx: typer.Context,
    recipe: Annotated[Path, typer.Argument(help="Recipe YAML, e.g. recipes/quickstart.yaml.")],
    grid: Annotated[str, typer.Option(help="key=v1,v2,...: one run per value, e.g. optim.lr=5e-4,1e-3,2e-3,5e-3.")],
    set_: Annotated[list[str] | None, typer.Option("--set", "-s", help="Override for every run: key=value (repeatable).")] = None,
    overwrite: Annotated[bool, typer.Option(help="Train every point again (default: reuse finished points, resume started ones).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the sweep as JSON.")] = False,
) -> None:
    """Train a recipe at each grid value with the test split off, choose on val, evaluate test once on the choice."""
    from rich.table import Table

    from sttool.cli.progress import progress_for
    from sttool.engine.sweep import parse_grid
    from sttool.engine.sweep import sweep as run_sweep

    key, values = parse_grid(grid)
    with progress_for(err_console) as progress:
        report = run_sweep(recipe, key, values, [*(set_ or []), *ctx.args], overwrite=overwrite, progress=progress)
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    table = Table(title=f"{recipe}: {key} chosen on val, test evaluated once")
    for column in (key, "best val top-1", "epoch", "test top-1"):
        table.add_column(column, justify="right")
    for point in report["points"]:
        chosen = point is report["chosen"] or point == report["chosen"]
        table.add_row(point["value"] + (" (chosen)" if chosen else ""), f"{point['val_top1']:.2f}%", str(point["best_epoch"]),
                      f"{report['test']['top1']:.2f}%" if chosen else "-")
    console.print(table)
