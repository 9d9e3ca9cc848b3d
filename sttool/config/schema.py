"""Bind plain YAML/CLI data to typed dataclasses, with errors a user can act on.

PyYAML reads ``1e-3`` as a string (YAML 1.1), so numbers are coerced by the schema's type hints,
never by the YAML parser. Unknown keys are errors that name the closest valid key.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, TypeVar, Union

import yaml

from sttool.errors import SttoolError

T = TypeVar("T")

_FLOAT_RE = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def closest(name: str, choices: list[str] | tuple[str, ...], listing: int = 16) -> str:
    """A 'did you mean' hint for ``name`` among ``choices``; lists the choices when there are few."""
    match = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    hint = f"did you mean '{match[0]}'? " if match else ""
    if len(choices) <= listing:
        return f"{hint}(valid: {', '.join(choices)})" if match else f"valid: {', '.join(choices)}"
    return hint + f"({len(choices)} valid choices)"


def bind(cls: type[T], data: Any, where: str) -> T:
    """Build dataclass ``cls`` from ``data`` (a mapping), checking keys and coercing types.

    ``where`` names the source ("recipes/ssv2.yaml: optim") and prefixes every error; a ``where``
    ending in ":" (a file) is followed by the bare key path ("recipes/ssv2.yaml: optim.lr").
    """
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise SttoolError(f"{where.rstrip(':')}: expected a mapping of keys, got {type(data).__name__} {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]  # cls is a dataclass
    hints = typing.get_type_hints(cls)
    for key in data:
        if key not in fields:
            raise SttoolError(f"{where.rstrip(':')}: unknown key '{key}'; {closest(str(key), tuple(fields))}")
    kwargs = {name: _coerce(hints[name], data[name], join(where, name)) for name in fields if name in data}
    obj = cls(**kwargs)
    check = getattr(obj, "check", None)
    if callable(check):
        check(where.rstrip(":"))
    return obj


def join(where: str, key: str) -> str:
    """The place of ``key`` inside ``where``: "file.yaml: model.keep_rate" or "model.keep_rate"."""
    return f"{where} {key}" if where.endswith(":") else f"{where}.{key}"


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(arg, value, where)
            except SttoolError as err:
                errors.append(str(err))
        raise SttoolError(errors[-1] if len(errors) == 1 else f"{where}: {value!r} does not fit {_name(tp)}")
    if origin is Literal:
        if value in args:
            return value
        raise SttoolError(f"{where}: {value!r} is not allowed; {closest(str(value), tuple(map(str, args)))}")
    if origin in (list, tuple):
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise SttoolError(f"{where}: expected a list, got {value!r}")
        item = args[0] if args else Any
        items = [_coerce(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return items if origin is list else tuple(items)
    if origin is dict:
        if not isinstance(value, Mapping):
            raise SttoolError(f"{where}: expected a mapping, got {value!r}")
        return {str(k): _coerce(args[1], v, join(where, str(k))) for k, v in value.items()}
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return bind(tp, value, where)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise SttoolError(f"{where}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise SttoolError(f"{where}: expected an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str) and re.fullmatch(r"[+-]?\d+", value.strip()):
            return int(value)
        raise SttoolError(f"{where}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, bool):
            raise SttoolError(f"{where}: expected a number, got {value!r}")
        number = None
        if isinstance(value, (int, float)):
            number = float(value)
        elif isinstance(value, str) and _FLOAT_RE.match(value.strip()):
            number = float(value)
        if number is None:
            raise SttoolError(f"{where}: expected a number, got {value!r}")
        if not math.isfinite(number):  # YAML reads .inf and .nan as floats; no setting of sttool means them
            raise SttoolError(f"{where}: {value!r} is not a finite number")
        return number
    if tp is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise SttoolError(f"{where}: expected a string, got {value!r}")
    raise TypeError(f"schema type {tp!r} at {where} is not supported")


def _name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def to_dict(obj: Any) -> Any:
    """A plain, YAML-safe copy of a bound dataclass (tuples become lists)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def apply_overrides(data: dict[str, Any], overrides: list[str], where: str = "override") -> dict[str, Any]:
    """Apply ``a.b=value`` (set) and ``~a.b`` (delete) overrides to nested ``data`` in place.

    Values are parsed as YAML (``[4, 7, 10]``, ``true``, ``null``); the schema coerces numbers later.
    """
    for item in overrides:
        if item.startswith("~"):
            path = item[1:].split(".")
            parent = _walk(data, path[:-1], item, create=False)
            if not isinstance(parent, dict) or path[-1] not in parent:
                raise SttoolError(f"{where} '{item}': no key '{item[1:]}' to delete")
            del parent[path[-1]]
            continue
        if "=" not in item:
            raise SttoolError(f"{where} '{item}': expected key=value (for example optim.lr=1e-3) or ~key")
        key, raw = item.split("=", 1)
        path = key.strip().split(".")
        if not all(path):
            raise SttoolError(f"{where} '{item}': empty key segment in '{key}'")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        parent = _walk(data, path[:-1], item, create=True)
        parent[path[-1]] = value
    return data


def _walk(data: dict[str, Any], path: list[str], item: str, create: bool) -> Any:
    node: Any = data
    for part in path:
        if not isinstance(node, dict):
            raise SttoolError(f"override '{item}': '{part}' is inside a value that is not a section")
        if part not in node or node[part] is None:
            if not create:
                return None
            node[part] = {}
        node = node[part]
    return node


def load_yaml(path: str) -> dict[str, Any]:
    """Read a YAML mapping with the safe loader; errors name the file."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = yaml.safe_load(handle)
    except FileNotFoundError:
        raise SttoolError(f"recipe file not found: {path}") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f" (line {mark.line + 1})" if mark is not None else ""
        raise SttoolError(f"{path}{line}: not valid YAML: {getattr(err, 'problem', err)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SttoolError(f"{path}: a recipe must be a mapping of sections, got {type(data).__name__}")
    return data
