"""Image datasets: files listed or found in folders, and in-memory arrays (CIFAR-100, SVHN)."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torchvision import tv_tensors

from sttool.data.loader import LabelledDataset
from sttool.data.samples import READ_TIMEOUT, BadSample, ReadTimeout, read_bytes
from sttool.data.synthetic.images import load_mask

HIGH_DEPTH = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")  # 16-bit, 32-bit integer and float single-channel modes


def to_rgb(image: Image.Image) -> Image.Image:
    """An image as 8-bit RGB, with its bit depth honoured: 16-bit and 32-bit single-channel images are
    scaled to 8 bits from their own range (PIL's ``convert('RGB')`` clips them, so a 16-bit PNG turns
    white); palette transparency goes through RGBA; alpha is dropped, as ``convert('RGB')`` in the
    VTAB-1K loaders."""
    if image.mode in HIGH_DEPTH:
        pixels = np.asarray(image, dtype=np.float64)
        if image.mode == "F":
            top = 1.0 if pixels.size and float(np.nanmax(pixels)) <= 1.0 else 255.0
        else:
            top = 65535.0 if image.mode.startswith("I;16") or pixels.max(initial=0) > 255 else 255.0
        gray = np.clip(np.nan_to_num(pixels) / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(gray).convert("RGB")  # uint8: mode L
    if image.mode == "P" and "transparency" in image.info:
        return image.convert("RGBA").convert("RGB")  # palette transparency must go through RGBA first
    return image.convert("RGB")


def load_rgb(path: str, timeout: float = READ_TIMEOUT) -> Image.Image:
    """An image file as 8-bit RGB (``to_rgb``), read within ``timeout`` seconds (0: no deadline).
    Missing, late, truncated or corrupt files raise BadSample."""
    try:
        data = read_bytes(path, timeout)
    except FileNotFoundError:
        raise BadSample("file not found") from None
    except ReadTimeout as err:
        raise BadSample(str(err)) from None
    except OSError as err:
        raise BadSample(f"cannot read the file: {err.strerror or err}") from None
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            return to_rgb(image)
    except UnidentifiedImageError:
        raise BadSample("not an image PIL can identify") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise BadSample(f"cannot decode the image: {err}") from None


class ImageFiles(LabelledDataset):
    """Images read from files with PIL; ``__getitem__`` -> (float (3, H, W), label) or a SkippedSample.

    With ``masks``, items are (image, label, bool mask (H, W)): the foreground mask goes through the
    same crop and flip as the image (torchvision transforms a ``Mask`` with the image, nearest-neighbour).
    """

    def __init__(self, *args: Any, transform: Callable, masks: bool = False, timeout: float = READ_TIMEOUT, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.transform = transform
        self.masks = masks
        self.timeout = timeout

    def __getitem__(self, index: int):
        entry = self.entries[index]
        try:
            image = load_rgb(entry.path, self.timeout)
        except BadSample as err:
            return self.bad(index, str(err))
        if not self.masks:
            return self.transform(image), entry.label
        try:
            mask = load_mask(entry.path, self.timeout)
        except BadSample as err:
            return self.bad(index, f"its mask: {err}")
        if mask is None:
            return self.bad(index, "no foreground mask beside the image (masks/ mirrors images/)")
        tensor, mask_tensor = self.transform(image, tv_tensors.Mask(torch.from_numpy(mask)))
        return tensor, entry.label, mask_tensor.bool()


class ArrayImages(LabelledDataset):
    """Images held in memory as uint8 (N, H, W, 3); each entry names its ``row``."""

    def __init__(self, *args: Any, images: np.ndarray, transform: Callable, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.images, self.transform = images, transform

    def __getitem__(self, index: int):
        entry = self.entries[index]
        return self.transform(Image.fromarray(self.images[entry.row])), entry.label
