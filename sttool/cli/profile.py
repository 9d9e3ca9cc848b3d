"""``sttool profile``: GFLOPs, tokens per stage and parameters, beside the dense backbone."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from sttool.cli.common import console


def _parse_layers(text: str | None) -> list[int] | None:
    if text is None:
        return None
    from sttool.errors import SttoolError

    try:
        return [int(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError:
        raise SttoolError(f"--keep-layers: '{text}' is not a comma-separated list of block numbers (e.g. 4,7,10)") from None


def profile(
    recipe: Annotated[Path | None, typer.Argument(help="Recipe YAML whose model to profile (default: the paper's ViT-B/16 Sparse-Tuning).")] = None,
    gflops: Annotated[bool, typer.Option("--gflops", help="Count GFLOPs (multiply-adds), tokens per stage and parameters.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of a table.")] = False,
    backbone: Annotated[str | None, typer.Option(help="timm ViT name, e.g. vit_base_patch16_224.orig_in21k.")] = None,
    method: Annotated[str | None, typer.Option(help="sparse_tuning, adaptformer, lora, full, linear, evit+adaptformer, ...")] = None,
    keep_rate: Annotated[float | None, typer.Option(help="Share of tokens kept at each pruning block, in (0, 1].")] = None,
    keep_layers: Annotated[str | None, typer.Option(help="Pruning blocks, counted from 1, e.g. 4,7,10.")] = None,
    img_size: Annotated[int | None, typer.Option(help="Input resolution (default: the backbone's).")] = None,
    num_classes: Annotated[int | None, typer.Option(help="Classes of the head (default 1000).")] = None,
    frames: Annotated[int | None, typer.Option(help="Video: frames per clip (space-time tokens).")] = None,
    tubelet: Annotated[int | None, typer.Option(help="Video: frames per space-time patch.")] = None,
) -> None:
    """Profile a model: GFLOPs as multiply-adds (dense ViT-B/16 = 17.58), tokens per stage, parameters."""
    from sttool.config.schema import bind, load_yaml, to_dict
    from sttool.models.config import ModelConfig
    from sttool.profiling import gflops_report

    config = ModelConfig()
    if recipe is not None:
        config = bind(ModelConfig, load_yaml(str(recipe)).get("model"), f"{recipe}: model")
    options: dict[str, Any] = {
        "backbone": backbone,
        "method": method,
        "keep_rate": keep_rate,
        "keep_layers": _parse_layers(keep_layers),
        "img_size": img_size,
        "num_classes": num_classes,
        "num_frames": frames,
        "tubelet": tubelet,
    }
    config = bind(ModelConfig, {**to_dict(config), **{k: v for k, v in options.items() if v is not None}}, "profile options")
    report = gflops_report(config)
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    _print_table(report)


def _print_table(report: dict[str, Any]) -> None:
    from rich.table import Table

    model, dense = report["model"], report["dense"]
    clip = f", {model['num_frames']} frames (tubelet {model['tubelet']})" if model["num_frames"] else ""
    title = f"{model['backbone']}{clip}, {model['num_classes']} classes; GFLOPs are multiply-adds"
    label = model["method"] + (f" (keep {model['keep_rate']:g} at blocks {','.join(map(str, model['keep_layers']))})" if model["keep_rate"] < 1 else "")
    table = Table(title=title)
    table.add_column("")
    table.add_column("dense backbone", justify="right")
    table.add_column(label, justify="right")
    table.add_row("GFLOPs", f"{dense['gflops']:.2f}", f"{report['gflops']:.2f} ({100 * report['gflops_ratio']:.1f}%)")
    table.add_row("tokens per stage", _stages(dense), _stages(report))
    table.add_row("params total", _m(dense["params_total"]), _m(report["params_total"]))
    table.add_row("trainable, head excluded", _m(dense["params_trainable_no_head"]), _m(report["params_trainable_no_head"]))
    table.add_row("trainable, head included", _m(dense["params_trainable"]), _m(report["params_trainable"]))
    console.print(table)


def _stages(figures: dict[str, Any]) -> str:
    return " > ".join(map(str, figures["tokens_per_stage"]))


def _m(count: int) -> str:
    return f"{count / 1e6:.2f} M"
