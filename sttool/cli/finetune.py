"""``sttool finetune`` and ``sttool evaluate``: parse arguments, call the engine, print the results."""

from __future__ import annotations

import json
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

    results = run_finetune(loaded, resume=resume, console=err_console)
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


def evaluate(
    target: Annotated[Path, typer.Argument(help="A run folder (its best checkpoint) or a checkpoint file.")],
    split: Annotated[str, typer.Option(help="Split to evaluate: test, val or train.")] = "test",
    batch_size: Annotated[int | None, typer.Option(help="Evaluation batch size (default: the recipe's).")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    throughput: Annotated[bool, typer.Option("--throughput/--no-throughput", help="Measure images/s.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of tables.")] = False,
) -> None:
    """Evaluate a trained model: top-1, top-5, per-class accuracy, GFLOPs and throughput."""
    from sttool.errors import SttoolError

    if split not in ("train", "val", "test"):
        raise SttoolError(f"--split: '{split}' is not a split; valid: train, val, test")
    if device not in ("auto", "cpu", "cuda"):
        raise SttoolError(f"--device: '{device}' is not valid; valid: auto, cpu, cuda")
    from sttool.engine.evaluate_run import evaluate_checkpoint

    report = evaluate_checkpoint(target, split, batch_size, device, throughput)
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    _print_evaluation(report)


def _print_evaluation(report: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title=f"{report['checkpoint']} on {report['split']} ({report['num_samples']} samples)")
    table.add_column("")
    table.add_column("value", justify="right")
    table.add_row("top-1", f"{report['top1']:.2f}%")
    table.add_row("top-5", f"{report['top5']:.2f}%")
    table.add_row("loss", f"{report['loss']:.4f}")
    if report["views"] > 1:
        table.add_row("views per clip", str(report["views"]))
    table.add_row("GFLOPs per sample", f"{report['gflops']:.3f}")
    table.add_row("tokens per stage", " > ".join(map(str, report["tokens_per_stage"])))
    if "throughput" in report:
        speed = report["throughput"]
        table.add_row("throughput", f"{speed['images_per_s']:.1f}/s ({speed['device']}, batch {speed['batch_size']}, {speed['dtype']})")
    if report["skipped"]:
        table.add_row("skipped bad samples", str(report["skipped"]))
    console.print(table)
    classes = Table(title="per-class top-1")
    classes.add_column("class")
    classes.add_column("top-1", justify="right")
    for name, value in zip(report["class_names"], report["per_class"], strict=True):
        classes.add_row(name, "-" if value is None else f"{value:.2f}%")
    console.print(classes)
