"""How much of what the model keeps lies on the object, for images with a ground-truth mask.

Rule: a patch is *on the object* when the mask covers at least half of its pixels (in the model's
input, after the evaluation transform). The share of kept patches on the object is to be read
against the share of all patches on the object: that is what keeping patches at random would give.
"""

from __future__ import annotations

import numpy as np

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
