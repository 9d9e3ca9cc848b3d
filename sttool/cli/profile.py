"""``sttool profile``: GFLOPs, tokens per stage and parameters beside the dense backbone; on request
throughput, training-step memory and time beside AdaptFormer and full fine-tuning, and early exits.

The Rich tables of ``sttool profile``: one per measurement, methods side by side.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from sttool.cli.common import console


def parse_layers(text: str | None, option: str = "--keep-layers") -> list[int] | None:
    """``4,7,10`` -> [4, 7, 10]; None stays None (not given)."""
    if text is None:
        return None
    from sttool.errors import SttoolError

    try:
        return [int(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError:
        raise SttoolError(f"{option}: '{text}' is not a comma-separated list of block numbers (e.g. 4,7,10)") from None


def profile(
    target: Annotated[Path | None, typer.Argument(help="Recipe YAML (its model, random weights), or a run folder or checkpoint (the tuned model). Default: the paper's ViT-B/16 Sparse-Tuning.")] = None,
    gflops: Annotated[bool, typer.Option("--gflops", help="GFLOPs (multiply-adds), tokens per stage and parameters; always shown.")] = False,
    throughput: Annotated[bool, typer.Option("--throughput", help="Images/s (clips/s) of the model and the dense backbone, timed in alternating rounds.")] = False,
    memory: Annotated[bool, typer.Option("--memory", help="Peak memory (CUDA) and time of one training step, beside AdaptFormer and full fine-tuning.")] = False,
    exits: Annotated[bool, typer.Option("--exits", help="Expected GFLOPs at the run's calibrated exit thresholds (exits.json).")] = False,
    batch_size: Annotated[int | None, typer.Option(help="Batch for --throughput and --memory (default 64 on CUDA, 8 on the CPU).")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    dtype: Annotated[str, typer.Option(help="fp32, or bf16 / fp16 autocast (bf16 on a CPU needs AVX512-BF16 or AMX, else it runs fp32 with a note).")] = "fp32",
    rounds: Annotated[int, typer.Option(help="Timed rounds per model (the median is reported).")] = 10,
    warmup: Annotated[int, typer.Option(help="Untimed rounds first.")] = 2,
    compile_: Annotated[bool, typer.Option("--compile", help="Time torch.compile'd models, the model and its baseline alike.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of tables.")] = False,
    backbone: Annotated[str | None, typer.Option(help="timm ViT name, e.g. vit_base_patch16_224.orig_in21k.")] = None,
    method: Annotated[str | None, typer.Option(help="sparse_tuning, adaptformer, lora, full, linear, evit+adaptformer, ...")] = None,
    keep_rate: Annotated[float | None, typer.Option(help="Share of tokens kept at each pruning block, in (0, 1].")] = None,
    keep_layers: Annotated[str | None, typer.Option(help="Pruning blocks, counted from 1, e.g. 4,7,10.")] = None,
    img_size: Annotated[int | None, typer.Option(help="Input resolution (default: the backbone's).")] = None,
    num_classes: Annotated[int | None, typer.Option(help="Classes of the head (default 1000).")] = None,
    frames: Annotated[int | None, typer.Option(help="Video: frames per clip (space-time tokens; inputs (B, 3, T, H, W)).")] = None,
    tubelet: Annotated[int | None, typer.Option(help="Video: frames per space-time patch.")] = None,
) -> None:
    """Profile a model: GFLOPs as multiply-adds (dense ViT-B/16 = 17.58), tokens per stage, parameters,
    and with flags throughput, training memory and time, and early-exit costs."""
    from sttool.profiling.report import ProfileRequest, profile_report, resolve_target

    options: dict[str, Any] = {
        "backbone": backbone, "method": method, "keep_rate": keep_rate, "keep_layers": parse_layers(keep_layers),
        "img_size": img_size, "num_classes": num_classes, "num_frames": frames, "tubelet": tubelet,
    }
    request = ProfileRequest(throughput, memory, exits, batch_size, device, dtype, rounds, warmup, compile_)
    report = profile_report(resolve_target(target, options), request)
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return

    print_profile(report)


def print_profile(report: dict[str, Any]) -> None:
    print_gflops(report)
    if "throughput" in report:
        print_throughput(report["throughput"], report["model"]["method"])
    if "memory" in report:
        print_memory(report["memory"])
    if "exits" in report:
        print_exits(report["exits"], report["dense_gflops"])


def print_gflops(report: dict[str, Any]) -> None:
    model, dense = report["model"], report["dense"]
    clip = f", {model['num_frames']} frames (tubelet {model['tubelet']})" if model["num_frames"] else ""
    source = report.get("source", {})
    tuned = f"; tuned run {source['run_dir']}" if source.get("kind") == "run" else ""
    title = f"{model['backbone']}{clip}, {model['num_classes']} classes{tuned}; GFLOPs are multiply-adds"
    label = model["method"] + (f" (keep {model['keep_rate']:g} at blocks {','.join(map(str, model['keep_layers']))})" if model["keep_rate"] < 1 else "")
    table = Table(title=title)
    table.add_column("")
    table.add_column("dense backbone", justify="right")
    table.add_column(label, justify="right")
    table.add_row("GFLOPs", f"{dense['gflops']:.4g}", f"{report['gflops']:.4g} ({100 * report['gflops_ratio']:.1f}%)")
    table.add_row("tokens per stage", _stages(dense), _stages(report))
    table.add_row("params total", _m(dense["params_total"]), _m(report["params_total"]))
    table.add_row("trainable, head excluded", _m(dense["params_trainable_no_head"]), _m(report["params_trainable_no_head"]))
    table.add_row("trainable, head included", _m(dense["params_trainable"]), _m(report["params_trainable"]))
    console.print(table)


def _settings(section: dict[str, Any]) -> str:
    shape = "x".join(map(str, section["input_shape"]))
    compiled = ", compiled" if section.get("compiled") else ""
    return f"{section['device']}, {section['dtype']}{compiled}, batch {section['batch_size']} x {shape}, median of {section['rounds']} rounds"


def print_throughput(section: dict[str, Any], method: str) -> None:
    table = Table(title=f"inference: {_settings(section)}")
    for column in ("", section["unit"], "ms per batch", "speed-up"):
        table.add_column(column, justify="left" if not column else "right")
    for name, result in section["models"].items():
        table.add_row("dense backbone" if name == "dense" else name, f"{result['images_per_s']:.1f}",
                      f"{result['ms_per_batch']:.1f}", f"{result['speedup']:.2f}x")
    console.print(table)


def print_memory(section: dict[str, Any]) -> None:
    base = section["baseline"]
    table = Table(title=f"training step (forward, backward, AdamW): {_settings(section)}")
    for column in ("method", "ms per step", f"time vs {base}", "peak memory", f"memory vs {base}"):
        table.add_column(column, justify="left" if column == "method" else "right")
    for name, result in section["models"].items():
        peak = result["peak_memory_mib"]
        ratio = result.get("memory_ratio")
        table.add_row(name, f"{result['ms_per_step']:.1f}", f"{result['time_ratio']:.2f}x",
                      "-" if peak is None else f"{peak:.0f} MiB", "-" if ratio is None else f"{ratio:.2f}x")
    console.print(table)
    if section["note"]:
        console.print(f"note: {section['note']}", highlight=False, markup=False)


def print_exits(section: dict[str, Any], dense_gflops: float) -> None:
    point = section["operating_point"]
    split = section["split"]
    fractions = point[split]["exit_fractions"] if point else None
    table = Table(title="early exits (cost to an exit includes every exit evaluated on the way)")
    for column in ("exit", "after block", "cost GFLOPs", "val top-1", "test top-1", f"leave here ({split})"):
        table.add_column(column, justify="right")
    tops = section["per_exit_top1"]
    for k, block in enumerate([*map(str, section["exit_layers"]), "final"]):
        test = tops.get("test")
        table.add_row(str(k + 1), block, f"{section['cost_to_exit_gflops'][k]:.4g}", f"{tops['val'][k]:.2f}%",
                      "-" if test is None else f"{test[k]:.2f}%", "-" if fractions is None else f"{100 * fractions[k]:.0f}%")
    console.print(table)
    if point is None:
        console.print(f"operating point: none meets the rule ({section['rule']})", highlight=False, markup=False)
        return
    console.print(
        f"expected GFLOPs at the operating point ({split}): {section['expected_gflops']:.4g} = "
        f"{100 * section['expected_ratio']:.0f}% of no early exit ({section['no_exit_gflops']:.4g}), "
        f"{100 * section['expected_gflops'] / dense_gflops:.0f}% of the dense backbone ({dense_gflops:.4g}); "
        f"thresholds {', '.join(f'{t:.3f}' for t in point['thresholds'])}; {section['rule']}", highlight=False, markup=False)


def _stages(figures: dict[str, Any]) -> str:
    return " > ".join(map(str, figures["tokens_per_stage"]))


def _m(count: int) -> str:
    return f"{count / 1e6:.2f} M"
