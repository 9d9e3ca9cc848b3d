"""``sttool evaluate``: accuracy, per-class accuracy, GFLOPs, throughput and exits of trained runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from sttool.cli.common import console


def evaluate(
    targets: Annotated[list[Path], typer.Argument(help="Run folders (their chosen checkpoint) or checkpoint files; several give a comparison.")],
    split: Annotated[str, typer.Option(help="Split to evaluate: test, val or train.")] = "test",
    batch_size: Annotated[int | None, typer.Option(help="Evaluation batch size (default: the recipe's).")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    throughput: Annotated[bool, typer.Option("--throughput/--no-throughput", help="Measure images/s.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """Evaluate trained models: top-1, top-5, per-class accuracy, GFLOPs, throughput and early exits."""
    from sttool.errors import SttoolError

    if split not in ("train", "val", "test"):
        raise SttoolError(f"--split: '{split}' is not a split; valid: train, val, test")
    if device not in ("auto", "cpu", "cuda"):
        raise SttoolError(f"--device: '{device}' is not valid; valid: auto, cpu, cuda")
    from sttool.engine.evaluate import evaluate_checkpoint

    reports = [evaluate_checkpoint(target, split, batch_size, device, throughput) for target in targets]
    if as_json:
        typer.echo(json.dumps(reports[0] if len(reports) == 1 else reports, indent=2))
        return
    if len(reports) > 1:
        _print_comparison(reports)
        return
    _print_evaluation(reports[0])
    if "exits" in reports[0]:
        _print_exits(reports[0]["exits"])


def _print_comparison(reports: list[dict[str, Any]]) -> None:
    from rich.table import Table

    table = Table(title=f"{reports[0]['split']} split, GFLOPs as multiply-adds, share of the dense backbone")
    for column in ("run", "method", "top-1", "GFLOPs", "trainable", "images/s"):
        table.add_column(column, justify="left" if column in ("run", "method") else "right")
    for report in reports:
        speed = report.get("throughput", {}).get("images_per_s")
        table.add_row(report["run"], report["method"], f"{report['top1']:.2f}%",
                      f"{report['gflops']:.4g} ({100 * report['gflops_ratio']:.0f}%)",
                      f"{report['params']['trainable_no_head'] / 1e6:.3f} M", "-" if speed is None else f"{speed:.1f}")
    console.print(table)


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
    table.add_row("GFLOPs per sample", f"{report['gflops']:.4g} ({100 * report['gflops_ratio']:.1f}% of dense)")
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


def _print_exits(exits: dict[str, Any]) -> None:
    from rich.table import Table

    per_exit = Table(title="exits (anytime prediction: every sample at every exit)")
    for column in ("exit", "after block", "cost GFLOPs", "val top-1", "test top-1"):
        per_exit.add_column(column, justify="right")
    blocks = [*map(str, exits["exit_layers"]), "final"]
    tops = exits["per_exit_top1"]
    for k, block in enumerate(blocks):
        test = tops.get("test")
        per_exit.add_row(str(k + 1), block, f"{exits['cost_to_exit_gflops'][k]:.4g}", f"{tops['val'][k]:.2f}%",
                         "-" if test is None else f"{test[k]:.2f}%")
    console.print(per_exit)
    curve = Table(title=f"accuracy against expected GFLOPs (thresholds from val; no early exit: {exits['no_exit_gflops']:.4g})")
    for column in ("p", "val top-1", "val GFLOPs", "test top-1", "test GFLOPs", "exit histogram (test)"):
        curve.add_column(column, justify="right")
    points = exits["curve"]
    for point in points[:: max(1, len(points) // 8)]:
        test = point.get("test", {})
        histogram = " ".join(f"{100 * f:.0f}%" for f in test.get("exit_fractions", []))
        curve.add_row(f"{point['p']:.2f}", f"{point['val']['top1']:.2f}%", f"{point['val']['gflops']:.4g}",
                      f"{test.get('top1', float('nan')):.2f}%", f"{test.get('gflops', float('nan')):.4g}", histogram)
    console.print(curve)
    point = exits.get("operating_point")
    measured = exits.get("measured")
    if point is None:
        console.print(f"operating point: none meets the rule ({exits['rule']})")
        return
    line = (f"operating point ({exits['rule']}): thresholds {', '.join(f'{t:.3f}' for t in point['thresholds'])}; "
            f"test top-1 {point['test']['top1']:.2f}% at {point['test']['gflops']:.4g} GFLOPs "
            f"({100 * point['test']['gflops'] / exits['no_exit_gflops']:.0f}% of no early exit)")
    if measured:
        line += (f"; measured with batch compaction: top-1 {measured['top1']:.2f}%, "
                 f"{measured['images_per_s']:.1f} images/s against {measured['no_exit_images_per_s']:.1f} without exits")
    console.print(line, highlight=False)
