"""``sttool finetune``: parse the recipe and overrides, call the engine, print the results."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from sttool.cli.common import console, err_console

EXIT_INTERRUPTED = 130


def finetune(
    ctx: typer.Context,
    recipe: Annotated[Path, typer.Argument(help="Recipe YAML, e.g. recipes/ssv2.yaml.")],
    set_: Annotated[list[str] | None, typer.Option("--set", "-s", help="Override: key=value (repeatable), e.g. optim.lr=1e-3.")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in the recipe's output folder.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace the run in the recipe's output folder (its recipe, metrics, checkpoints, plots).")] = False,
    print_config: Annotated[bool, typer.Option("--print-config", help="Print the resolved recipe and exit.")] = False,
) -> None:
    """Fine-tune a model from a recipe. Extra arguments key=value override the recipe (like --set)."""
    from sttool.config.recipe import load_recipe
    from sttool.config.schema import to_dict

    overrides = [*(set_ or []), *ctx.args]
    loaded = load_recipe(recipe, overrides)
    if print_config:
        import yaml

        typer.echo(yaml.safe_dump(to_dict(loaded), sort_keys=False).rstrip())
        return
    from sttool.engine import finetune as run_finetune

    results = run_finetune(loaded, resume=resume, console=err_console, overwrite=overwrite)
    if results.get("status") == "interrupted":
        raise typer.Exit(EXIT_INTERRUPTED)
    _print_results(loaded.run_dir, results)


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
