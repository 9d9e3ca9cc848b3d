"""Backbone weights from the timm hub (online) or a local file (.npz, .pth, .safetensors), offline.

Local files are read without running pickled code: safetensors, or ``torch.load(weights_only=True)``;
JAX ``.npz`` files go through timm's own loader (NumPy arrays, no pickle).
"""

from __future__ import annotations

from pathlib import Path

import torch
from timm.models.vision_transformer import VisionTransformer, checkpoint_filter_fn
from torch import Tensor

from sttool.errors import SttoolError

WEIGHT_SUFFIXES = (".npz", ".pth", ".pt", ".bin", ".safetensors")
HEAD_KEYS = ("head.weight", "head.bias")

HOW_TO_GIVE_WEIGHTS = (
    "give a local file with weights=PATH (.npz, .pth or .safetensors, e.g. the original "
    "ViT-B_16.npz), or weights=none for random initialisation"
)


def read_state_dict(path: Path) -> dict[str, Tensor]:
    """A flat state dict from a .safetensors or torch file, unwrapping the usual checkpoint keys."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except Exception as err:  # safetensors raises its own error types for corrupt headers
            raise SttoolError(f"weights file {path}: not a readable safetensors file ({err})") from None
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle errors, truncated zip archives, tensors of unknown types
        raise SttoolError(f"weights file {path}: cannot be read as a weights-only torch checkpoint ({err})") from None
    for key in ("state_dict_ema", "model_ema", "model", "state_dict", "module"):
        if isinstance(data, dict) and isinstance(data.get(key), dict):
            data = data[key]
            break
    if not isinstance(data, dict) or not all(isinstance(v, Tensor) for v in data.values()):
        raise SttoolError(f"weights file {path}: holds no state dict of tensors")
    return data


def load_local_weights(model: VisionTransformer, source: str) -> set[str]:
    """Load backbone weights from ``source`` into ``model``; returns the keys that were loaded.

    The classifier is skipped when its shape differs (a 21k-class checkpoint into a 100-class model).
    Any other missing or misshapen key is an error naming it.
    """
    path = Path(source).expanduser()
    if not path.is_file():
        raise SttoolError(f"weights file not found: {source} (valid: a path to {', '.join(WEIGHT_SUFFIXES)}, 'hub' or 'none')")
    if path.suffix not in WEIGHT_SUFFIXES:
        raise SttoolError(f"weights file {source}: unknown type '{path.suffix}'; valid: {', '.join(WEIGHT_SUFFIXES)}")
    if path.suffix == ".npz":
        head_before = {k: v.clone() for k, v in model.state_dict().items() if k in HEAD_KEYS}
        try:
            model.load_pretrained(str(path))
        except Exception as err:  # timm's npz loader raises KeyError/RuntimeError/ValueError on a mismatch
            raise SttoolError(f"weights file {source} does not fit this backbone: {type(err).__name__}: {err}") from None
        head_loaded = any(not torch.equal(head_before[k], model.state_dict()[k]) for k in head_before)
        return {k for k in model.state_dict() if head_loaded or k not in HEAD_KEYS}
    state = checkpoint_filter_fn(read_state_dict(path), model)
    expected = model.state_dict()
    for key in HEAD_KEYS:
        if key in state and (key not in expected or state[key].shape != expected[key].shape):
            del state[key]
    for key, value in state.items():
        if key in expected and value.shape != expected[key].shape:
            raise SttoolError(
                f"weights file {source} does not fit this backbone: '{key}' has shape {tuple(value.shape)} "
                f"in the file but {tuple(expected[key].shape)} in the model"
            )
    unexpected = sorted(k for k in state if k not in expected)
    missing = sorted(k for k in expected if k not in state and k not in HEAD_KEYS)
    if missing or unexpected:
        detail = f"missing {missing[:3]}" if missing else f"unexpected {unexpected[:3]}"
        raise SttoolError(f"weights file {source} does not fit this backbone: {detail} ({len(missing)} missing, {len(unexpected)} unexpected keys)")
    model.load_state_dict(state, strict=False)
    return set(state)
