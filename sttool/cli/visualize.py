"""``sttool visualize``: the tokens each pruning stage kept, exit histograms, accuracy against GFLOPs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from sttool.cli.common import app_command, console
from sttool.cli.profile import parse_layers

visualize_app = typer.Typer(
    help="Pictures of kept tokens (PIL), and plots of a run's exits and accuracy against GFLOPs (matplotlib).",
    no_args_is_help=True,
)


def _parse_rates(text: str) -> list[float]:
    from sttool.errors import SttoolError

    try:
        return [float(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError:
        raise SttoolError(f"--keep-rates: '{text}' is not a comma-separated list of numbers (e.g. 0.5,0.7,1.0)") from None


def kept_tokens(
    inputs: Annotated[list[Path], typer.Argument(help="Images (any size or mode), videos (.mp4, .avi, .webm) or folders of frames.")],
    run: Annotated[Path | None, typer.Option(help="Run folder or checkpoint: use its tuned model and its evaluation transform.")] = None,
    out: Annotated[Path | None, typer.Option(help="Folder for the PNGs (default: beside each input, as <stem>_kept_tokens.png).")] = None,
    backbone: Annotated[str | None, typer.Option(help="Without --run: a timm ViT with Sparse-Tuning's token selection (default: the micro backbone).")] = None,
    weights: Annotated[str | None, typer.Option(help="Without --run: hub, a local weights file, or none (random).")] = None,
    keep_rate: Annotated[float | None, typer.Option(help="Without --run: share of tokens kept at each pruning block (default 0.7).")] = None,
    keep_layers: Annotated[str | None, typer.Option(help="Without --run: pruning blocks, counted from 1 (default 4,7,10).")] = None,
    frames: Annotated[int, typer.Option(help="Without --run: frames per clip for videos.")] = 8,
    timeout: Annotated[float | None, typer.Option(help="Seconds each file read or video decode may take (default: the run's data.decode_timeout, or 10).")] = None,
    panel: Annotated[int, typer.Option(help="Pixels per panel side, whatever the model's input size.")] = 320,
    dpi: Annotated[int, typer.Option(help="Resolution written into the PNG, and the PDF's page scale.")] = 300,
    formats: Annotated[str, typer.Option("--format", help="Comma-separated: png, pdf, svg (PNG always).")] = "png",
    source: Annotated[str, typer.Option(help="What panels show: auto (the original photo when it is larger than the model's input), input or original.")] = "auto",
    grid: Annotated[bool, typer.Option("--grid/--no-grid", help="Draw the patch grid.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of tables.")] = False,
) -> None:
    """Picture the tokens each pruning stage kept: the model's input, then one panel per stage with the dropped patches darkened."""
    from sttool.errors import SttoolError
    from sttool.visualize.kept_tokens import (
        ModelChoice,
        ModelLoader,
        as_dict,
        average_object_shares,
        visualize_kept_tokens,
    )

    if timeout is not None and timeout <= 0:
        raise SttoolError(f"--timeout: {timeout} must be positive seconds")
    from sttool.visualize.render import FORMATS, Style

    chosen = tuple(dict.fromkeys(["png", *(f.strip() for f in formats.split(",") if f.strip())]))
    bad = [f for f in chosen if f not in FORMATS]
    if bad or source not in ("auto", "input", "original") or panel < 32 or dpi < 1:
        raise SttoolError(f"--format {formats} (valid: {', '.join(FORMATS)}), --source {source} (auto, input, original), "
                          f"--panel {panel} (at least 32) or --dpi {dpi} is not valid")
    style = Style(panel=panel, grid=grid, source=source, dpi=dpi)  # type: ignore[arg-type]  # checked above
    choice = ModelChoice(run, backbone, weights, keep_rate, parse_layers(keep_layers), frames, timeout)
    results = visualize_kept_tokens(inputs, ModelLoader(choice), out, style, chosen)
    average = average_object_shares(results)
    if as_json:
        typer.echo(json.dumps({"images": [as_dict(r) for r in results], "object_average": average}, indent=2))
        return
    for result in results:
        kept = " > ".join(str(s["kept_patches"]) for s in result.stages) or "all"
        patches = result.stages[0]["patches"] if result.stages else "all"
        console.print(f"{result.source} -> {result.png}  (patches kept per stage: {kept} of {patches})", highlight=False, markup=False)
    if average is not None:
        _print_object_shares([r for r in results if r.object is not None], average)


def _print_object_shares(results: list[Any], average: dict[str, Any]) -> None:
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="share of kept patches on the object, per pruning block "
                        "(a patch is on the object when the mask covers at least half of it)")
    table.add_column("image", no_wrap=True)
    for column in ("object (px)", "object (patches)", *[f"block {s['block']}" for s in results[0].stages]):
        table.add_column(column, justify="right")

    def row(name: str, shares: dict[str, Any]) -> None:
        cells = ["-" if v is None else f"{100 * v:.0f}%" for v in shares["kept_on_object"]]
        table.add_row(name, f"{100 * shares['object_pixels']:.0f}%", f"{100 * shares['object_patches']:.0f}%", *cells)

    for result in results:
        row(escape("/".join(result.source.parts[-2:])), result.object)
    row(f"mean of {average['images']}", average)
    console.print(table)


def exits(
    run: Annotated[Path, typer.Argument(help="Run folder with exits.json (a run trained with model.exit_layers).")],
    out: Annotated[Path | None, typer.Option(help="Folder for exits.png (default: RUN/plots).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the plotted numbers as JSON.")] = False,
) -> None:
    """Plot the exit histogram at the operating point and each exit's top-1 on val and test."""
    from sttool.visualize.plots import plot_exits

    report = plot_exits(run, out)
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    point = report["operating_point"]
    if point is not None:
        shares = ", ".join(f"{100 * f:.0f}%" for f in point[report["split"]]["exit_fractions"])
        console.print(f"exit histogram ({report['split']}, blocks {report['exit_layers']} then final): {shares}; "
                      f"expected {report['expected_gflops']:.4g} GFLOPs", highlight=False, markup=False)
    console.print(f"plot written to {report['png']}", highlight=False, markup=False)


def tradeoff(
    run: Annotated[Path, typer.Argument(help="Run folder or checkpoint.")],
    keep_rates: Annotated[str, typer.Option(help="Keep rates to evaluate at inference (the run's own is added).")] = "0.5,0.6,0.7,0.8,0.9,1.0",
    split: Annotated[str, typer.Option(help="Split to evaluate: test or val.")] = "test",
    batch_size: Annotated[int | None, typer.Option(help="Evaluation batch size (default: the recipe's).")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    out: Annotated[Path | None, typer.Option(help="Folder for tradeoff.png (default: RUN/plots).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the plotted numbers as JSON.")] = False,
) -> None:
    """Plot top-1 against GFLOPs: the run at several keep rates, and its exit-threshold curve if it has exits."""
    from sttool.errors import SttoolError
    from sttool.runtime import resolve_device
    from sttool.visualize.keep_rate_sweep import tradeoff_report
    from sttool.visualize.plots import plot_tradeoff, pyplot

    if split not in ("val", "test"):
        raise SttoolError(f"--split: '{split}' is not valid; valid: test, val")
    pyplot()  # fail before evaluating anything when matplotlib is missing
    report = tradeoff_report(run, _parse_rates(keep_rates), split, resolve_device(device), batch_size)
    report["png"] = str(plot_tradeoff(report, out))
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    _print_tradeoff(report)


def _print_tradeoff(report: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title=f"{report['split']} top-1 against GFLOPs per view, keep rate changed at inference")
    for column in ("keep rate", "GFLOPs", "top-1", "tokens per stage"):
        table.add_column(column, justify="right")
    for point in report["keep_rate_curve"]:
        mark = " (tuned)" if abs(point["keep_rate"] - report["tuned_keep_rate"]) < 1e-9 else ""
        table.add_row(f"{point['keep_rate']:g}{mark}", f"{point['gflops']:.4g}", f"{point['top1']:.2f}%",
                      " > ".join(map(str, point["tokens_per_stage"])))
    console.print(table)
    if report["exit_curve"]:
        console.print(f"exit-threshold curve: {len(report['exit_curve'])} points from exits.json", highlight=False, markup=False)
    console.print(f"plot written to {report['png']}", highlight=False, markup=False)


app_command(visualize_app, kept_tokens, name="kept-tokens")
app_command(visualize_app, exits)
app_command(visualize_app, tradeoff)
