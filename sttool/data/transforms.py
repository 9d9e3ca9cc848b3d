"""Image and clip transforms from the model's InputSpec and the recipe's ``augment`` choice.

- ``paper``: training uses RandomResizedCrop (scale 0.08-1, the backbone's interpolation) and a
  horizontal flip (unless the labels depend on direction); evaluation resizes the short side to
  ``img_size / crop_pct`` and centre-crops, as timm does.
- ``resize``: the VTAB-1K protocol: a plain resize to img_size x img_size, no crop, no flip, in
  training and evaluation alike.
- ``none``: the evaluation transform in training too.

A clip is uint8 (T, 3, H, W); torchvision's v2 transforms draw one set of random parameters per call,
so every frame of a clip gets the same crop and flip.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from torchvision.transforms import v2
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as F

from sttool.data.config import InputSpec

TRAIN_SCALE = (0.08, 1.0)


def _normalise(spec: InputSpec) -> list[Callable]:
    return [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(spec.mean), list(spec.std)), v2.ToPureTensor()]


def _geometry(spec: InputSpec, augment: str, train: bool, flip: bool) -> list[Callable]:
    mode = InterpolationMode(spec.interpolation)
    if augment == "resize":
        steps: list[Callable] = [v2.Resize((spec.img_size, spec.img_size), interpolation=mode, antialias=True)]
    elif train and augment == "paper":
        steps = [v2.RandomResizedCrop(spec.img_size, scale=TRAIN_SCALE, interpolation=mode, antialias=True)]
    else:
        steps = [v2.Resize(spec.resize_size, interpolation=mode, antialias=True), v2.CenterCrop(spec.img_size)]
    if train and flip:
        steps.append(v2.RandomHorizontalFlip())
    return steps


def eval_crop_box(width: int, height: int, spec: InputSpec, augment: str) -> tuple[float, float, float, float]:
    """The region (left, top, right, bottom) of a width x height image that the evaluation transform
    shows the model: the whole image for ``resize``, else the centre crop after the short-side resize."""
    if augment == "resize":
        return 0.0, 0.0, float(width), float(height)
    scale = spec.resize_size / min(width, height)
    new_w, new_h = (spec.resize_size, int(spec.resize_size * height / width)) if width <= height else \
        (int(spec.resize_size * width / height), spec.resize_size)
    left, top = int(round((new_w - spec.img_size) / 2.0)), int(round((new_h - spec.img_size) / 2.0))
    return left / scale, top / scale, (left + spec.img_size) / scale, (top + spec.img_size) / scale


def image_transform(spec: InputSpec, augment: str, train: bool, flip: bool) -> Callable:
    """PIL image -> float (3, H, W), normalised."""
    return v2.Compose(_geometry(spec, augment, train, flip) + _normalise(spec))


def clip_transform(spec: InputSpec, augment: str, train: bool, flip: bool) -> Callable[[Tensor], Tensor]:
    """uint8 clip (T, 3, H, W) -> float (3, T, H, W), normalised; one view."""
    steps = v2.Compose(_geometry(spec, augment, train, flip) + _normalise(spec))
    return lambda clip: steps(clip).permute(1, 0, 2, 3)  # (3, T, H, W)


def crop_offsets(length: int, size: int, crops: int) -> list[int]:
    """Start offsets of ``crops`` crops of ``size`` along a side of ``length``: centred for one crop,
    evenly spaced from one end to the other for more (VideoMAE's 3 spatial views)."""
    room = max(0, length - size)
    if crops == 1:
        return [room // 2]
    return [round(i * room / (crops - 1)) for i in range(crops)]


def clip_views(spec: InputSpec, augment: str, crops: int) -> Callable[[Tensor], list[Tensor]]:
    """uint8 clip (T, 3, H, W) -> ``crops`` float views (3, T, S, S) for evaluation: the short side
    resized to img_size / crop_pct, then crops along the long side (centred across the short one)."""
    if crops == 1:
        single = clip_transform(spec, augment, train=False, flip=False)
        return lambda clip: [single(clip)]
    normalise = v2.Compose(_normalise(spec))
    mode = InterpolationMode(spec.interpolation)

    def views(clip: Tensor) -> list[Tensor]:
        resized = F.resize(clip, spec.resize_size, interpolation=mode, antialias=True)  # (T, 3, h, w)
        h, w = resized.shape[-2:]
        size = spec.img_size
        if w >= h:
            boxes = [(crop_offsets(h, size, 1)[0], left) for left in crop_offsets(w, size, crops)]
        else:
            boxes = [(top, crop_offsets(w, size, 1)[0]) for top in crop_offsets(h, size, crops)]
        return [normalise(F.crop(resized, top, left, size, size)).permute(1, 0, 2, 3) for top, left in boxes]  # (3, T, S, S) each

    return views
