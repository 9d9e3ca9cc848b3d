"""``sttool visualize kept-tokens``: for each image or clip, a picture of the tokens each pruning stage
kept, and, for images with a ground-truth mask, the share of kept patches that lie on the object.

Tracking: a block's ``TokenSelection`` indexes the block's *candidate* tokens: every token after the
prefix, in the current order, with an earlier stage's fused token as the last candidate. Stage by
stage, each candidate is traced to the patch it started as (``origin``); the fused token traces to no
patch (-1), so a patch absorbed into a fused token counts as dropped from then on, even if that fused
token is kept later. Space-time tokens of a video model are numbered ``t * h * w + p`` (time slot t,
patch p), as the tubelet embedding lays them out.

On the object: a patch is *on the object* when the mask covers at least half of its pixels (in the
model's input, after the evaluation transform). The share of kept patches on the object is to be read
against the share of all patches on the object: that is what keeping patches at random would give.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from statistics import mean
from typing import Any

import numpy as np
import torch
from torch import Tensor

from sttool.data.inputs import Preprocess, Sample, is_video, read_sample
from sttool.data.samples import READ_TIMEOUT
from sttool.errors import SttoolError
from sttool.models.build import build_model
from sttool.models.config import ModelConfig
from sttool.models.micro import MICRO_NAME, MICRO_TAG, MICRO_WEIGHTS
from sttool.models.vit import ForwardState, SparseViT
from sttool.runs.load import input_spec, load_run
from sttool.runtime import seeded
from sttool.visualize.render import Figure, Panel, Style, draw_panels, save_figure

SUFFIX = "_kept_tokens.png"

DEFAULT_BACKBONE = f"{MICRO_NAME}.{MICRO_TAG}"
HOW_TO_CHOOSE = "give a run (--run RUN_DIR or a checkpoint), or a backbone and its weights (--backbone NAME --weights PATH; --weights none for random weights)"

# Given whether the input is a clip, the model and its input preparation.
ModelFor = Callable[[bool], tuple[SparseViT, Preprocess]]


@dataclass
class ModelChoice:
    """What the user named. No run and no backbone: the micro backbone with its shipped weights."""

    run: Path | None = None
    backbone: str | None = None
    weights: str | None = None  # None: "hub" (timm's pretrained weights; the micro backbone's ship with sttool)
    keep_rate: float | None = None  # bare backbones only; None: Sparse-Tuning's 0.7
    keep_layers: list[int] | None = None  # bare backbones only; None: blocks 4, 7, 10
    frames: int = 8  # bare backbones, for clips
    timeout: float | None = None  # seconds per file read or video decode; None: the run's data.decode_timeout, or 10


class ModelLoader:
    """Loads, once each, the model for images and the one for clips that ``choice`` names."""

    def __init__(self, choice: ModelChoice, device: torch.device | None = None) -> None:
        self.choice = choice
        self.device = device or torch.device("cpu")
        self.loaded: dict[bool, tuple[SparseViT, Preprocess]] = {}

    def __call__(self, video: bool) -> tuple[SparseViT, Preprocess]:
        if self.choice.run is not None:
            video = False  # a run has one model, whatever the input; the caller checks that they match
        if video not in self.loaded:
            self.loaded[video] = self._run() if self.choice.run is not None else self._backbone(video)
        return self.loaded[video]

    def _run(self) -> tuple[SparseViT, Preprocess]:
        choice = self.choice
        if any(v is not None for v in (choice.backbone, choice.weights, choice.keep_rate, choice.keep_layers)):
            raise SttoolError("--backbone, --weights, --keep-rate and --keep-layers describe a bare backbone; a run brings its own model")
        assert choice.run is not None
        model, recipe, _ = load_run(choice.run, self.device)
        data = recipe.data
        timeout = choice.timeout if choice.timeout is not None else data.decode_timeout or READ_TIMEOUT
        return model, Preprocess(input_spec(model), data.augment, data.frame_sampling, data.frame_stride, timeout)

    def _backbone(self, video: bool) -> tuple[SparseViT, Preprocess]:
        choice = self.choice
        default = choice.backbone is None and choice.weights is None
        if default and not MICRO_WEIGHTS.is_file():
            raise SttoolError(f"the default backbone {DEFAULT_BACKBONE} has no weights file at {MICRO_WEIGHTS}; {HOW_TO_CHOOSE}")
        config = ModelConfig(backbone=choice.backbone or DEFAULT_BACKBONE, weights=choice.weights or "hub", method="sparse_tuning",
                             keep_rate=choice.keep_rate, num_frames=choice.frames if video else None)
        if choice.keep_layers is not None:
            config = replace(config, keep_layers=list(choice.keep_layers))
        try:
            with seeded(0):  # random parts (adapters, or all with --weights none) are the same every time
                model = build_model(config=config)
        except SttoolError as err:
            raise SttoolError(f"{err}; {HOW_TO_CHOOSE}") from None
        model = model.to(self.device).eval()
        return model, Preprocess(input_spec(model), timeout=choice.timeout if choice.timeout is not None else READ_TIMEOUT)



FUSED = -1  # the origin of a fused token: no single patch


@dataclass
class KeptStage:
    """The tokens after one pruning block."""

    block: int  # 1-based block that made the selection
    kept: Tensor  # (B, P) bool: original patches still present as themselves
    tokens: int  # tokens after the block: prefix, kept candidates and the fused token
    fused_weight: Tensor | None  # (B,) share of the [CLS] attention row fused into one token; None without fusion


def trace_selections(selections: list, num_patches: int, batch: int) -> list[KeptStage]:
    """Follow ``selections`` (one entry per block, None where nothing was dropped) from the patch grid."""
    origin = torch.arange(num_patches).expand(batch, num_patches)  # (B, M) patch each candidate started as
    stages = []
    for block, selection in enumerate(selections, start=1):
        if selection is None:
            continue
        origin = origin.gather(1, selection.index.cpu())  # (B, K) kept candidates, in selection order
        weight = None
        if selection.fuse_weights is not None:
            origin = torch.cat([origin, origin.new_full((batch, 1), FUSED)], dim=1)  # (B, K + 1)
            weight = selection.fuse_weights.float().sum(dim=1).cpu()  # (B,)
        kept = torch.zeros(batch, num_patches + 1, dtype=torch.bool)
        kept.scatter_(1, origin + 1, True)  # column 0 collects the fused token
        stages.append(KeptStage(block, kept[:, 1:], selection.num_prefix + origin.shape[1], weight))
    return stages


@torch.no_grad()
def track_kept_tokens(model: SparseViT, inputs: Tensor) -> list[KeptStage]:
    """Run ``model`` (put in eval mode) on ``inputs`` (B, 3, H, W) or (B, 3, T, H, W) and trace its selections."""
    model.eval()
    state = ForwardState()
    model.forward_features(inputs, state=state)
    return trace_selections(state.selections, model.patch_embed.num_patches, inputs.shape[0])


ON_OBJECT = 0.5  # least share of a patch's pixels the mask must cover


def patches_on_object(mask: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """bool (h, w): which patches of a (H, W) mask are on the object."""
    h, w = grid
    cover = mask.reshape(h, mask.shape[0] // h, w, mask.shape[1] // w).mean(axis=(1, 3))  # (h, w)
    return cover >= ON_OBJECT


def object_shares(mask: np.ndarray, grid: tuple[int, int], kept_per_stage: list[np.ndarray]) -> dict[str, object]:
    """The object's share of the pixels and of the patches, and per stage the share of kept patches
    (bool (h, w) each) that are on the object (None when a stage keeps no original patch)."""
    on = patches_on_object(mask, grid)
    shares = []
    for kept in kept_per_stage:
        count = int(kept.sum())
        shares.append(float((kept & on).sum()) / count if count else None)
    return {
        "object_pixels": float(mask.mean()),
        "object_patches": float(on.mean()),
        "kept_on_object": shares,
    }


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


def kept_tokens_figure(model: SparseViT, sample: Sample, style: Style | None = None) -> tuple[Figure, list[KeptStage]]:
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
    tubelet = sample.frames.shape[0] // slots
    return draw_panels(sample.frames, panels, grid, tubelet, sample.original, style), stages


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


def visualize_kept_tokens(paths: list[Path], models: ModelFor, out_dir: Path | None = None, style: Style | None = None,
                          formats: tuple[str, ...] = ("png",)) -> list[KeptTokensResult]:
    """Write one picture per input (PNG, and PDF or SVG beside it if asked); ``models(video)`` gives the
    model and input preparation for each kind."""
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
        figure, stages = kept_tokens_figure(model, sample, style)
        save_figure(figure, png, formats)
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

