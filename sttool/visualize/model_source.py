"""The model a picture is made with: a run's tuned model, or a bare backbone with Sparse-Tuning's
token selection (the micro backbone shipped with sttool by default), and how its inputs are prepared.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from sttool.engine import setup
from sttool.engine.evaluate_run import load_checkpoint_model
from sttool.errors import SttoolError
from sttool.models.build import build_model
from sttool.models.config import ModelConfig
from sttool.models.micro import MICRO_NAME, MICRO_TAG, MICRO_WEIGHTS
from sttool.models.vit import SparseViT
from sttool.visualize.media import Preprocess

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
        model, recipe, _ = load_checkpoint_model(choice.run, self.device)
        data = recipe.data
        return model, Preprocess(setup.input_spec(model), data.augment, data.frame_sampling, data.frame_stride)

    def _backbone(self, video: bool) -> tuple[SparseViT, Preprocess]:
        choice = self.choice
        default = choice.backbone is None and choice.weights is None
        if default and not MICRO_WEIGHTS.is_file():
            raise SttoolError(f"the default backbone {DEFAULT_BACKBONE} has no weights file at {MICRO_WEIGHTS}; {HOW_TO_CHOOSE}")
        layers = {} if choice.keep_layers is None else {"keep_layers": list(choice.keep_layers)}
        config = ModelConfig(backbone=choice.backbone or DEFAULT_BACKBONE, weights=choice.weights or "hub", method="sparse_tuning",
                             keep_rate=choice.keep_rate, num_frames=choice.frames if video else None, **layers)
        torch.manual_seed(0)  # random parts (adapters, or all with --weights none) are the same every time
        try:
            model = build_model(config=config)
        except SttoolError as err:
            raise SttoolError(f"{err}; {HOW_TO_CHOOSE}") from None
        model = model.to(self.device).eval()
        return model, Preprocess(setup.input_spec(model))
