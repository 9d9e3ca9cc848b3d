"""Composition of recipe files: ``extends`` chains merged key by key (overrides live in ``schema``)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from sttool.config.schema import load_yaml
from sttool.errors import SttoolError


def read_recipe_data(path: str | Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The recipe's mapping with its ``extends`` chain merged in (later files win, per key)."""
    path = Path(path)
    if path.resolve() in seen:
        raise SttoolError(f"{path}: 'extends' forms a cycle through {', '.join(map(str, seen))}")
    data = load_yaml(str(path))
    base_name = data.pop("extends", None)
    if base_name is None:
        return data
    if not isinstance(base_name, str):
        raise SttoolError(f"{path}: 'extends' must be a file name, got {base_name!r}")
    base_path = path.parent / base_name
    if not base_path.is_file():
        raise SttoolError(f"{path}: extends '{base_name}', which does not exist at {base_path}")
    return merge(read_recipe_data(base_path, (*seen, path.resolve())), data)


def merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Deep merge of mappings: ``update`` wins; nested sections merge key by key."""
    merged = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged
