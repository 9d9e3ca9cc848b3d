"""What the model expects of its input, filled from timm so normalisation never gets hard-coded."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sttool.errors import SttoolError

INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "box", "hamming", "lanczos")


@dataclass(frozen=True)
class InputSpec:
    """Input size, normalisation, resize interpolation and eval crop of a backbone.

    ``num_frames`` is None for image models and the clip length for video models.
    """

    img_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bicubic"
    crop_pct: float = 0.875
    num_frames: int | None = None

    def __post_init__(self) -> None:
        if self.img_size < 1:
            raise SttoolError(f"input spec: img_size {self.img_size} must be a positive integer")
        if len(self.mean) != 3 or len(self.std) != 3:
            raise SttoolError(f"input spec: mean {self.mean} and std {self.std} need 3 values (RGB)")
        if any(s <= 0 for s in self.std):
            raise SttoolError(f"input spec: std {self.std} must be positive")
        if self.interpolation not in INTERPOLATIONS:
            raise SttoolError(f"input spec: interpolation '{self.interpolation}' is not one of {', '.join(INTERPOLATIONS)}")
        if not 0.0 < self.crop_pct <= 1.0:
            raise SttoolError(f"input spec: crop_pct {self.crop_pct} is outside (0, 1]")
        if self.num_frames is not None and self.num_frames < 1:
            raise SttoolError(f"input spec: num_frames {self.num_frames} must be a positive integer")

    @property
    def resize_size(self) -> int:
        """Short side before the eval centre crop, timm's ``floor(img_size / crop_pct)``."""
        return int(self.img_size / self.crop_pct)

    @classmethod
    def from_timm(cls, data_config: Mapping[str, Any], num_frames: int | None = None) -> InputSpec:
        """From ``timm.data.resolve_model_data_config(model)``: input_size, mean, std, interpolation, crop_pct."""
        _, height, width = data_config["input_size"]
        if height != width:
            raise SttoolError(f"input spec: input_size {tuple(data_config['input_size'])} is not square; sttool crops square inputs")
        return cls(
            img_size=int(height),
            mean=tuple(float(v) for v in data_config["mean"]),
            std=tuple(float(v) for v in data_config["std"]),
            interpolation=str(data_config.get("interpolation", "bicubic")),
            crop_pct=float(data_config.get("crop_pct", 0.875)),
            num_frames=num_frames,
        )
