"""What a user points a model at: a photo of any size or mode, a video file or a folder of frames, read
(with a deadline) through the model's own evaluation transform, plus the same pixels back as uint8 and
the original photo for drawing.

A synthetic image's foreground mask (``load_mask``) goes through the same transform, so it lines up
with the model's input pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from sttool.data.config import InputSpec
from sttool.data.image_dataset import load_rgb
from sttool.data.samples import READ_TIMEOUT, BadSample
from sttool.data.synthetic.images import load_mask
from sttool.data.transforms import clip_transform, eval_crop_box, image_transform
from sttool.data.video.backends import VideoError
from sttool.data.video.guarded import GuardedBackend
from sttool.data.video.sampling import sample_frames
from sttool.errors import SttoolError

VIDEO_SUFFIXES = (".mp4", ".avi", ".webm", ".mkv", ".mov")
FRAME_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
VALID = f"an image PIL can read, a video ({', '.join(VIDEO_SUFFIXES)}) or a folder of frames"


@dataclass(frozen=True)
class Preprocess:
    """How inputs become model inputs: the run's (or the backbone's) evaluation transform and frame sampling."""

    spec: InputSpec
    augment: Literal["paper", "resize", "none"] = "paper"
    sampling: Literal["segment", "dense"] = "segment"
    stride: int = 4
    timeout: float = READ_TIMEOUT  # seconds for each file read or video decode (data.decode_timeout of a run)


@dataclass
class Sample:
    """One input as the model sees it."""

    path: Path
    inputs: Tensor  # (3, H, W) or (3, T, H, W), normalised
    frames: np.ndarray  # uint8 (T, H, W, 3): the model's input de-normalised; T = 1 for an image
    mask: np.ndarray | None  # bool (H, W) foreground in model-input pixels, for images with a mask
    original: Image.Image | None = None  # an image file's region the model sees, at the file's resolution


def is_video(path: Path) -> bool:
    return path.is_dir() or path.suffix.lower() in VIDEO_SUFFIXES


def to_uint8(inputs: Tensor, spec: InputSpec) -> np.ndarray:
    """Undo the normalisation: (3, ..., H, W) float -> uint8 (..., H, W, 3)."""
    shape = (3,) + (1,) * (inputs.ndim - 1)
    mean = torch.tensor(spec.mean).view(shape)
    std = torch.tensor(spec.std).view(shape)
    pixels = (inputs * std + mean).clamp(0, 1).mul(255).round().to(torch.uint8)
    return pixels.movedim(0, -1).numpy()  # (..., H, W, 3)


def read_image(path: Path, pre: Preprocess) -> Sample:
    try:
        image = load_rgb(str(path), pre.timeout)
        mask = load_mask(path, pre.timeout)
    except BadSample as err:
        raise SttoolError(f"{path}: {err}; valid: {VALID}") from None
    transform = image_transform(pre.spec, pre.augment, train=False, flip=False)
    inputs = transform(image)  # (3, H, W)
    original = image.crop(eval_crop_box(*image.size, pre.spec, pre.augment))
    if mask is not None:
        mask_image = Image.fromarray(mask.astype(np.uint8) * 255).convert("RGB").resize(image.size, Image.Resampling.NEAREST)
        mask = to_uint8(transform(mask_image), pre.spec)[..., 0] >= 128  # (H, W), the same geometry as the input
    return Sample(path, inputs, to_uint8(inputs, pre.spec)[None], mask, original)


def _folder_frames(path: Path) -> list[Path]:
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in FRAME_SUFFIXES)
    if not files:
        raise SttoolError(f"{path}: a folder of frames needs image files ({', '.join(FRAME_SUFFIXES)}); found none")
    return files


def read_clip(path: Path, pre: Preprocess) -> Sample:
    """``spec.num_frames`` frames sampled as in evaluation (one view) from a video file or a frame folder."""
    count = pre.spec.num_frames
    if count is None:
        raise SttoolError(f"{path}: the model takes images, not clips")
    try:
        if path.is_dir():
            files = _folder_frames(path)
            index = sample_frames(len(files), count, pre.sampling, None, pre.stride)
            images = [np.asarray(load_rgb(str(files[i]), pre.timeout)) for i in index]
            if len({image.shape for image in images}) > 1:
                raise SttoolError(f"{path}: the frames differ in size; a clip needs frames of one size")
            frames = np.stack(images)  # (T, H, W, 3)
        else:
            video = GuardedBackend("auto", pre.timeout).open(str(path))  # a file that hangs the decoder costs the deadline
            frames = video.get_frames(sample_frames(video.num_frames, count, pre.sampling, None, pre.stride).tolist())
    except (VideoError, BadSample, ValueError) as err:
        raise SttoolError(f"{path}: cannot read it as a clip ({err}); valid: {VALID}") from None
    clip = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)  # (T, 3, H, W)
    inputs = clip_transform(pre.spec, pre.augment, train=False, flip=False)(clip)  # (3, T, H, W)
    return Sample(path, inputs, to_uint8(inputs, pre.spec), None)


def read_sample(path: Path, pre: Preprocess) -> Sample:
    """An image, or a clip for a video file or a folder; missing paths are errors naming them."""
    if not path.exists():
        raise SttoolError(f"{path}: file not found; valid: {VALID}")
    return read_clip(path, pre) if is_video(path) else read_image(path, pre)


