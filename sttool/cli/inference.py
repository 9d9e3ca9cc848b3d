"""``sttool predict`` (top-k classes of images, videos, folders and list files) and ``sttool export``
(torch.export or ONNX, checked against PyTorch): thin commands over ``sttool.engine.inference``."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Annotated

import typer

from sttool.cli.common import console, err_console


def predict(
    target: Annotated[str, typer.Argument(help="A run folder, a checkpoint, an adapter folder, a Hub id (user/name), or a timm model name with a classifier head.")],
    inputs: Annotated[list[Path], typer.Argument(help="Images, videos, folders (searched recursively) or list files (.txt: one path per line).")],
    top_k: Annotated[int, typer.Option("--top-k", help="Classes to report per input.")] = 5,
    batch_size: Annotated[int, typer.Option(help="Inputs per forward pass.")] = 32,
    exits: Annotated[bool, typer.Option("--exits", help="Leave early at the run's calibrated operating point (a run with exits).")] = False,
    kept_tokens: Annotated[Path | None, typer.Option(help="Also save a picture of the kept tokens of each input into this folder.")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    dtype: Annotated[str | None, typer.Option(help="fp32, bf16 or fp16 (default: the run's train.precision; bf16 needs a GPU or a CPU with bf16).")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds each file read or video decode may take.")] = 10.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON: one object per input, and the unreadable inputs.")] = False,
    as_csv: Annotated[Path | None, typer.Option("--csv", help="Also write path,rank,class,probability rows to this file.")] = None,
) -> None:
    """Predict the classes of inputs with a tuned model: top-k with probabilities, class names from the run."""
    from sttool.cli.progress import progress_for
    from sttool.engine.inference import Predictor
    from sttool.errors import SttoolError

    if timeout <= 0:
        raise SttoolError(f"--timeout: {timeout} must be positive seconds")
    predictor = Predictor.load(target, device, dtype, timeout)
    with progress_for(err_console, enabled=not as_json) as progress:
        report = predictor.predict(inputs, top_k, batch_size, exits, progress)
    if as_csv is not None:
        _write_csv(as_csv, report)
    if kept_tokens is not None:
        _pictures(predictor, [Path(p.path) for p in report.predictions], kept_tokens)
    if as_json:
        typer.echo(json.dumps({"predictions": [{"path": p.path, "top": [{"class": c, "probability": v} for c, v in p.top],
                                                "exit": p.exit} for p in report.predictions],
                               "bad": [{"path": path, "reason": reason} for path, reason in report.bad]}, indent=2))
    else:
        for p in report.predictions:
            classes = ", ".join(f"{name} {100 * prob:.1f}%" for name, prob in p.top)
            leave = f"  (exit {p.exit + 1})" if p.exit is not None else ""
            console.print(f"{p.path}: {classes}{leave}", highlight=False, markup=False, soft_wrap=True)
        for path, reason in report.bad:
            err_console.print(f"bad: {path}: {reason}", highlight=False, markup=False, soft_wrap=True)
        if report.bad:
            err_console.print(f"{len(report.bad)} of {len(report.bad) + len(report.predictions)} inputs could not be read",
                              highlight=False)
    if report.bad and not report.predictions:
        raise typer.Exit(2)


def _write_csv(path: Path, report) -> None:
    from sttool.runs.folder import write_text

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["path", "rank", "class", "probability", "exit"])
    for p in report.predictions:
        for rank, (name, prob) in enumerate(p.top, start=1):
            writer.writerow([p.path, rank, name, f"{prob:.6f}", "" if p.exit is None else p.exit + 1])
    write_text(path, buffer.getvalue())


def _pictures(predictor, paths: list[Path], out: Path) -> None:
    from sttool.visualize.kept_tokens import visualize_kept_tokens

    results = visualize_kept_tokens(paths, lambda clips: (predictor.model, predictor.pre), out)
    err_console.print(f"kept tokens: {len(results)} pictures in {out}", highlight=False, markup=False)


def export(
    target: Annotated[Path, typer.Argument(help="A run folder, a checkpoint or an adapter folder.")],
    out: Annotated[Path, typer.Option(help="The file to write (.pt2 for torch, .onnx for onnx).")],
    format_: Annotated[str, typer.Option("--format", help="torch (torch.export) or onnx (the dynamo exporter).")] = "torch",
    check: Annotated[bool, typer.Option("--check/--no-check", help="Run the written model against PyTorch on a random batch.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Export a tuned model with a dynamic batch size, and check it against PyTorch."""
    from sttool.engine.inference import export_model

    report = export_model(target, format_, out, check)  # type: ignore[arg-type]  # checked inside
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    extra = [Path(f).name for f in report["files"] if f != report["out"]]
    beside = f" with {', '.join(extra)} beside it" if extra else ""
    console.print(f"wrote {report['out']}{beside} ({report['bytes'] / 1e6:.1f} MB, {report['format']}), input "
                  f"{' x '.join(map(str, report['input_shape']))}", highlight=False, markup=False)
    checked = report.get("check")
    if checked:
        console.print(f"checked against PyTorch on a batch of {checked['batch']}: max |difference| "
                      f"{checked['max_abs_difference']:.2e} (logits up to {checked['max_abs_logit']:.2f})", highlight=False)
    for note in report["notes"]:
        err_console.print(f"note: {note}", highlight=False, markup=False)
