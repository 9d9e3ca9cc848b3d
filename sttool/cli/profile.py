"""``sttool profile``: GFLOPs, tokens per stage and parameters beside the dense backbone; on request
throughput, training-step memory and time beside AdaptFormer and full fine-tuning, and early exits."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer


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
    dtype: Annotated[str, typer.Option(help="fp32, or bf16 / fp16 autocast.")] = "fp32",
    rounds: Annotated[int, typer.Option(help="Timed rounds per model (the median is reported).")] = 10,
    warmup: Annotated[int, typer.Option(help="Untimed rounds first.")] = 2,
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
    from sttool.profiling.report import ProfileRequest, profile_report
    from sttool.profiling.targets import resolve_target

    options: dict[str, Any] = {
        "backbone": backbone, "method": method, "keep_rate": keep_rate, "keep_layers": parse_layers(keep_layers),
        "img_size": img_size, "num_classes": num_classes, "num_frames": frames, "tubelet": tubelet,
    }
    request = ProfileRequest(throughput, memory, exits, batch_size, device, dtype, rounds, warmup)
    report = profile_report(resolve_target(target, options), request)
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    from sttool.cli.profile_tables import print_profile

    print_profile(report)
