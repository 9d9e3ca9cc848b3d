"""A run's model: built from its recipe (the frozen backbone rebuilt, seeded), with a checkpoint's
trained tensors loaded; and what the data pipeline must give it."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sttool.errors import SttoolError
from sttool.models.build import build_model
from sttool.models.vit import SparseViT
from sttool.runs.checkpoint import (
    ADAPTER_FILE,
    is_adapter_folder,
    load_trained_state,
    read_checkpoint,
    read_metadata,
)
from sttool.runs.folder import BEST, LAST
from sttool.runs.recipe import Recipe, bind_recipe
from sttool.runtime import seeded


def add_token_head(model: Any, num_classes: int) -> None:
    """The patch classifier of token labelling (class under each patch, or background), part of the
    model so that it trains, checkpoints and resumes with it; the exported backbone leaves it out."""
    model.token_head = nn.Linear(model.embed_dim, num_classes + 1)


def create_model(recipe: Recipe, device: torch.device) -> SparseViT:
    """The recipe's model; seeded from ``train.seed`` without touching the global random state, so a
    backbone with ``weights: none`` is the same random one every time (checkpoints hold only trained
    tensors, so evaluation rebuilds the frozen part from the recipe)."""
    with seeded(recipe.train.seed):
        model = build_model(config=recipe.model)
        if recipe.train.token_labels > 0:
            add_token_head(model, recipe.num_classes)
    if recipe.train.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model.to(device)


def input_spec(model: SparseViT) -> Any:
    """What the data pipeline must produce for ``model``: size, normalisation, frames."""
    from timm.data import resolve_model_data_config

    from sttool.data import InputSpec

    spec = InputSpec.from_timm(resolve_model_data_config(model), num_frames=model.sttool_config.num_frames)
    return replace(spec, img_size=model.patch_embed.img_size[0])


def probe_model(recipe: Recipe) -> SparseViT:
    """The recipe's model on the meta device (no memory, no weights): for its input spec and shapes."""
    with torch.device("meta"):
        return build_model(config=replace(recipe.model, weights=None, num_classes=recipe.model.num_classes or 1))


HUB_HINT = ("download it where the Hub can be reached with 'huggingface-cli download {id} --local-dir DIR' "
            "and give DIR, or give a run folder or checkpoint")


def resolve_source(target: str | Path) -> Path:
    """A path as given, or a Hugging Face Hub id (``user/name``, not a path here) fetched into the Hub's
    cache; offline, a Hub id is a one-line error saying how to give a folder instead."""
    path = Path(target)
    text = str(target)
    if path.exists() or text.count("/") != 1 or text.startswith((".", "/", "~")):
        return path
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false"):
        raise SttoolError(f"{text}: not a folder here, and the Hugging Face Hub is offline (HF_HUB_OFFLINE); "
                          + HUB_HINT.format(id=text))
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(text, allow_patterns=["adapter.safetensors", "config.json", "README.md"]))
    except Exception as err:  # connection, authentication and not-found errors of many types
        raise SttoolError(f"{text}: not a folder here, and the Hub gave {type(err).__name__}; " + HUB_HINT.format(id=text)) from None


def find_checkpoint(target: Path) -> Path:
    """The checkpoint a run folder was judged by (best on val, else last), an adapter folder's tensors,
    or the file itself."""
    if is_adapter_folder(target):
        return target / ADAPTER_FILE
    if target.is_dir():
        for name in (BEST, LAST):
            if (target / name).is_file():
                return target / name
        raise SttoolError(f"{target} holds no checkpoint ({BEST} or {LAST}); is it a run folder?")
    if not target.exists():
        raise SttoolError(f"no run folder or checkpoint at {target}")
    return target


def run_folder_of(checkpoint: Path) -> Path:
    """The run folder of a checkpoint file (``RUN/checkpoints/x.safetensors``; an adapter folder's own)."""
    return checkpoint.parent if checkpoint.name == ADAPTER_FILE else checkpoint.parent.parent


def load_run(target: str | Path, device: torch.device | None = None) -> tuple[SparseViT, Recipe, Path]:
    """The trained model of a run folder, checkpoint, adapter folder or Hub id (in eval mode), its recipe
    and the checkpoint path."""
    path = find_checkpoint(resolve_source(target))
    state, _, meta = read_checkpoint(path)
    recipe = bind_recipe(meta["recipe"], f"{path} (recipe):")
    model = create_model(recipe, device or torch.device("cpu"))
    load_trained_state(model, state, str(path))
    return model.eval(), recipe, path


def class_names(checkpoint: Path, num_classes: int) -> list[str]:
    """The class names a checkpoint was trained with (kept in its metadata), else "0", "1", ..."""
    names = read_metadata(checkpoint).get("class_names")
    if isinstance(names, list) and len(names) == num_classes:
        return [str(n) for n in names]
    return [str(i) for i in range(num_classes)]
