"""Find and read the foreground mask of a synthetic image, to score kept tokens against ground truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def mask_path(image_path: str | Path) -> Path | None:
    """``ROOT/images/<split>/<class>/<n>.png`` -> ``ROOT/masks/<split>/<class>/<n>.png`` if that file exists."""
    path = Path(image_path)
    parts = path.parts
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] == "images":
            candidate = Path(*parts[:i], "masks", *parts[i + 1 :])
            return candidate if candidate.is_file() else None
    return None


def load_mask(image_path: str | Path) -> np.ndarray | None:
    """The bool (H, W) foreground mask of an image, or None when it has none."""
    path = mask_path(image_path)
    if path is None:
        return None
    with Image.open(path) as mask:
        return np.asarray(mask.convert("L")) >= 128
