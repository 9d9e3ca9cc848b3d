"""``sttool visualize kept-tokens``: for each image or clip, a PNG of the tokens each pruning stage
kept, and, for images with a ground-truth mask, the share of kept patches that lie on the object."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from statistics import mean
from typing import Any

from sttool.errors import SttoolError
from sttool.models.vit import SparseViT
from sttool.visualize.media import Sample, is_video, read_sample
from sttool.visualize.model_source import ModelFor
from sttool.visualize.object_share import object_shares
from sttool.visualize.render import Figure, Panel, draw_panels
from sttool.visualize.tracking import KeptStage, track_kept_tokens

SUFFIX = "_kept_tokens.png"


@dataclass
class KeptTokensResult:
    source: Path
    png: Path
    stages: list[dict[str, Any]]  # per pruning stage: block, kept_patches, patches, tokens, fused_weight
    object: dict[str, Any] | None  # ``object_shares`` for images with a mask


def _caption(stage: KeptStage, patches: int) -> list[str]:
    kept = int(stage.kept[0].sum())
    fused = ("rest dropped (no fusion)" if stage.fused_weight is None
             else f"fused token: {100 * float(stage.fused_weight[0]):.0f}% of [CLS] attn")
    return [f"block {stage.block}: {kept}/{patches} patches kept", fused]


def kept_tokens_figure(model: SparseViT, sample: Sample) -> tuple[Figure, list[KeptStage]]:
    """The picture of one sample (the model's input, then one panel per stage) and the stages traced."""
    device = next(model.parameters()).device
    stages = track_kept_tokens(model, sample.inputs.unsqueeze(0).to(device))
    grid = tuple(model.patch_embed.grid_size)  # (h, w)
    slots = getattr(model.patch_embed, "time_size", 1)
    patches = model.patch_embed.num_patches
    height, width = sample.frames.shape[1:3]
    clip = f"{sample.frames.shape[0]} frames, " if slots > 1 or sample.frames.shape[0] > 1 else ""
    panels = [Panel([f"input {width}x{height}", f"{clip}{patches} patches"], None)]
    for stage in stages:
        panels.append(Panel(_caption(stage, patches), stage.kept[0].view(slots, *grid).numpy()))  # (T', h, w)
    return draw_panels(sample.frames, panels, tubelet=sample.frames.shape[0] // slots), stages


def output_paths(sources: list[Path], out_dir: Path | None) -> list[Path]:
    """``<stem>_kept_tokens.png`` beside each source or in ``out_dir``; when several sources would share a
    name, each of them gets its folder's name first (``circle_00000``), and a number if that still repeats."""
    def folder(source: Path) -> Path:
        return out_dir if out_dir is not None else source.parent

    plain = [folder(source) / f"{source.stem}{SUFFIX}" for source in sources]
    uses = Counter(plain)
    paths: list[Path] = []
    taken: set[Path] = set()
    for source, path in zip(sources, plain, strict=True):
        if uses[path] > 1:
            path = folder(source) / f"{source.parent.name}_{source.stem}{SUFFIX}"
        base, number = path, 2
        while path in taken:
            path = base.with_name(f"{base.name[:-len(SUFFIX)]}_{number}{SUFFIX}")
            number += 1
        taken.add(path)
        paths.append(path)
    return paths


def _check_kind(model: SparseViT, path: Path, video: bool) -> None:
    frames = model.sttool_config.num_frames
    if video and frames is None:
        raise SttoolError(f"{path} is a clip but the run's model takes images (model.num_frames is not set)")
    if not video and frames is not None:
        raise SttoolError(f"{path} is an image but the run's model takes clips of {frames} frames; give videos")


def visualize_kept_tokens(paths: list[Path], models: ModelFor, out_dir: Path | None = None) -> list[KeptTokensResult]:
    """Write one PNG per input; ``models(video)`` gives the model and input preparation for each kind."""
    missing = [path for path in paths if not path.exists()]
    if missing:
        raise SttoolError(f"{missing[0]}: file not found")
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    results = []
    for path, png in zip(paths, output_paths(paths, out_dir), strict=True):
        video = is_video(path)
        model, pre = models(video)
        _check_kind(model, path, video)
        sample = read_sample(path, pre)
        figure, stages = kept_tokens_figure(model, sample)
        figure.image.save(png)
        patches = model.patch_embed.num_patches
        summary = [{"block": s.block, "kept_patches": int(s.kept[0].sum()), "patches": patches, "tokens": s.tokens,
                    "fused_weight": None if s.fused_weight is None else float(s.fused_weight[0])} for s in stages]
        shares = None
        if sample.mask is not None:
            grid = tuple(model.patch_embed.grid_size)
            shares = object_shares(sample.mask, grid, [s.kept[0].view(*grid).numpy() for s in stages])
        results.append(KeptTokensResult(path, png, summary, shares))
    return results


def average_object_shares(results: list[KeptTokensResult]) -> dict[str, Any] | None:
    """Means over the images that have a mask (per stage, over images where the stage kept a patch)."""
    shares = [r.object for r in results if r.object is not None]
    if not shares:
        return None
    stages = len(shares[0]["kept_on_object"])
    per_stage = [[s["kept_on_object"][k] for s in shares if s["kept_on_object"][k] is not None] for k in range(stages)]
    return {
        "images": len(shares),
        "object_pixels": mean(s["object_pixels"] for s in shares),
        "object_patches": mean(s["object_patches"] for s in shares),
        "kept_on_object": [mean(values) if values else None for values in per_stage],
    }


def as_dict(result: KeptTokensResult) -> dict[str, Any]:
    return {"source": str(result.source), "png": str(result.png), "stages": result.stages, "object": result.object}

