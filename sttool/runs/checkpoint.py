"""Checkpoints of the trained parameters only, as safetensors, written atomically.

A checkpoint holds the tensors the run changed (trained parameters and buffers such as the head's
BatchNorm statistics, never the frozen backbone), optionally the optimiser state for resuming, and
JSON metadata: the resolved recipe and the run's progress. Nothing is unpickled when reading.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from sttool.errors import SttoolError
from sttool.runs.folder import disk_error

MODEL_PREFIX = "model/"
OPTIM_PREFIX = "optim/"


def trained_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Trained parameters and all buffers, keyed as in ``model.state_dict()``."""
    state: dict[str, torch.Tensor] = {name: p for name, p in model.named_parameters() if p.requires_grad}
    state.update(dict(model.named_buffers()))
    return {name: t.detach() for name, t in state.items()}


def first_non_finite(tensors: dict[str, torch.Tensor]) -> str | None:
    """The name of the first floating-point tensor holding NaN or infinity, or None."""
    for name, tensor in tensors.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            return name
    return None


def load_trained_state(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Copy a checkpoint's tensors into ``model``; every tensor must exist with the same shape, and be finite."""
    expected = model.state_dict()
    bad = first_non_finite(state)
    if bad is not None:
        raise SttoolError(f"checkpoint {source}: '{bad}' holds NaN or infinite values; the model it saved had diverged")
    for name, tensor in state.items():
        if name not in expected:
            raise SttoolError(f"checkpoint {source}: '{name}' does not exist in this model; was it trained with another method?")
        if expected[name].shape != tensor.shape:
            raise SttoolError(
                f"checkpoint {source}: '{name}' has shape {tuple(tensor.shape)}, the model {tuple(expected[name].shape)}"
            )
    model.load_state_dict(state, strict=False)


def save_checkpoint(path: Path, model: nn.Module, metadata: dict[str, Any],
                    optimizer: torch.optim.Optimizer | None = None) -> None:
    """Write trained tensors (and the optimiser state) with ``metadata`` to ``path``, atomically."""
    tensors = {MODEL_PREFIX + k: v for k, v in trained_state(model).items()}
    meta = dict(metadata)
    if optimizer is not None:
        state = optimizer.state_dict()
        for index, values in state["state"].items():
            for key, value in values.items():
                tensors[f"{OPTIM_PREFIX}{index}/{key}"] = torch.as_tensor(value)
        meta["optimizer_param_groups"] = state["param_groups"]
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as err:
        raise disk_error(err, path) from None
    os.close(handle)
    try:
        save_file(tensors, tmp, metadata={"sttool": json.dumps(meta)})
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except OSError as err:
        raise disk_error(err, path) from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def read_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, dict[str, torch.Tensor]], dict[str, Any]]:
    """(model tensors, optimiser state by parameter index, metadata) of a checkpoint file."""
    if not path.is_file():
        raise SttoolError(f"checkpoint not found: {path}")
    meta = read_metadata(path)  # refuses a file sttool did not write before its tensors are read
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as err:
        raise SttoolError(f"checkpoint {path} cannot be read: {err}") from None
    model = {k[len(MODEL_PREFIX):]: v for k, v in tensors.items() if k.startswith(MODEL_PREFIX)}
    optim: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith(OPTIM_PREFIX):
            index, name = key[len(OPTIM_PREFIX):].split("/", 1)
            optim.setdefault(index, {})[name] = value
    return model, optim, meta


def read_metadata(path: Path) -> dict[str, Any]:
    """A checkpoint's metadata alone (its recipe, progress and class names), without reading the tensors."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            raw = (handle.metadata() or {}).get("sttool")
    except (SafetensorError, OSError) as err:
        raise SttoolError(f"checkpoint {path} cannot be read: {err}") from None
    if raw is None:
        raise SttoolError(f"checkpoint {path} was not written by sttool (no 'sttool' metadata)")
    return json.loads(raw)


def restore_optimizer(optimizer: torch.optim.Optimizer, optim: dict[str, dict[str, torch.Tensor]],
                      metadata: dict[str, Any], device: torch.device) -> None:
    """Load the optimiser state saved by ``save_checkpoint``."""
    state = {int(index): {k: (v if k == "step" else v.to(device)) for k, v in values.items()} for index, values in optim.items()}
    optimizer.load_state_dict({"state": state, "param_groups": metadata["optimizer_param_groups"]})


ADAPTER_FILE = "adapter.safetensors"
ADAPTER_CONFIG = "config.json"
ADAPTER_FORMAT = "sttool-adapter/1"


def is_adapter_folder(path: Path) -> bool:
    return path.is_dir() and (path / ADAPTER_FILE).is_file() and (path / ADAPTER_CONFIG).is_file()


def write_adapter_folder(out: Path, model: nn.Module, metadata: dict[str, Any], card: str) -> Path:
    """A folder to share a tuned model, as PEFT's are: the trained tensors (``adapter.safetensors``, a
    checkpoint with its recipe and class names), ``config.json`` (what rebuilds the model: backbone and
    weights, method and options, class names, sttool's version) and a model card (``README.md``). The
    frozen backbone is not in it: it comes from timm (``weights: hub``) when the folder is loaded."""
    import sttool

    out.mkdir(parents=True, exist_ok=True)
    save_checkpoint(out / ADAPTER_FILE, model, {**metadata, "kind": "adapter"})
    recipe = metadata["recipe"]
    config = {"format": ADAPTER_FORMAT, "sttool_version": sttool.__version__, "backbone": recipe["model"]["backbone"],
              "weights": recipe["model"]["weights"], "method": recipe["model"]["method"], "model": recipe["model"],
              "class_names": metadata.get("class_names"), "recipe": recipe}
    from sttool.runs.folder import write_text

    write_text(out / ADAPTER_CONFIG, json.dumps(config, indent=2))
    write_text(out / "README.md", card)
    return out
