"""Image datasets: files listed or found in folders, and in-memory arrays (CIFAR-100, SVHN)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torchvision import tv_tensors

from sttool.data.labelled import LabelledDataset
from sttool.data.samples import BadSample
from sttool.data.synthetic.masks import load_mask


def load_rgb(path: str) -> Image.Image:
    """An image as 8-bit RGB: grayscale, palette, CMYK and alpha images are converted (alpha dropped,
    as ``convert('RGB')`` in the VTAB-1K loaders). Missing, truncated or corrupt files raise BadSample."""
    try:
        with Image.open(path) as image:
            image.load()
            if image.mode == "P" and "transparency" in image.info:
                image = image.convert("RGBA")  # palette transparency must go through RGBA first
            return image.convert("RGB")
    except FileNotFoundError:
        raise BadSample("file not found") from None
    except UnidentifiedImageError:
        raise BadSample("not an image PIL can identify") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise BadSample(f"cannot decode the image: {err}") from None


class ImageFiles(LabelledDataset):
    """Images read from files with PIL; ``__getitem__`` -> (float (3, H, W), label) or a SkippedSample.

    With ``masks``, items are (image, label, bool mask (H, W)): the foreground mask goes through the
    same crop and flip as the image (torchvision transforms a ``Mask`` with the image, nearest-neighbour).
    """

    def __init__(self, *args: Any, transform: Callable, masks: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.transform = transform
        self.masks = masks

    def __getitem__(self, index: int):
        entry = self.entries[index]
        try:
            image = load_rgb(entry.path)
        except BadSample as err:
            return self.bad(index, str(err))
        if not self.masks:
            return self.transform(image), entry.label
        mask = load_mask(entry.path)
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
