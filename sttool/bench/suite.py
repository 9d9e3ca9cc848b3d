"""A bench suite: the tasks of a VTAB-style benchmark in their groups, the methods it compares, and the
grid every method gets, read from one validated YAML file (``recipes/<suite>/suite.yaml``).

Each task trains from ``<suite folder>/<task>.yaml`` when that file exists (the real VTAB-1K's per-task
recipes), else from the suite's shared ``recipe``; a method is a list of recipe overrides, the grid
value it uses without a grid search, and its own grid (so that every method gets the same budget of
grid points, on its own scale).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from sttool.config.schema import closest
from sttool.errors import SttoolError

SUITE_FILE = "suite.yaml"
SUITE_KEYS = ("name", "root", "recipe", "grid_key", "groups", "methods", "default_methods", "quick")
METHOD_KEYS = ("overrides", "value", "grid", "summary")


@dataclass(frozen=True)
class BenchMethod:
    """One compared method: overrides on the task recipe, its fixed grid value, its grid."""

    name: str
    overrides: tuple[str, ...]
    value: str
    grid: tuple[str, ...]
    summary: str = ""


@dataclass(frozen=True)
class Suite:
    name: str
    path: Path  # the suite file
    root: str  # default data root (``--root`` replaces it)
    recipe: Path | None  # shared recipe of tasks without their own file
    grid_key: str
    groups: dict[str, tuple[str, ...]]
    methods: dict[str, BenchMethod]
    default_methods: tuple[str, ...]
    quick_tasks: tuple[str, ...]
    quick_overrides: tuple[str, ...]

    @property
    def tasks(self) -> tuple[str, ...]:
        return tuple(task for tasks in self.groups.values() for task in tasks)

    def group_of(self, task: str) -> str:
        return next(group for group, tasks in self.groups.items() if task in tasks)

    def recipe_for(self, task: str) -> Path:
        own = self.path.parent / f"{task}.yaml"
        if own.is_file():
            return own
        if self.recipe is None:
            raise SttoolError(f"{self.path}: task '{task}' has no {own.name} beside the suite and the suite has no 'recipe'")
        return self.recipe


def suite_path(name: str, cwd: Path | None = None) -> Path:
    """``name`` as a path (a suite file or its folder), else ``recipes/<name>/suite.yaml`` in the working
    folder, else in the recipes beside the sttool source tree."""
    given = Path(name)
    candidates = [given / SUITE_FILE if given.is_dir() else given]
    folder = name.replace("-", "_")
    import sttool

    for recipes in ((cwd or Path.cwd()) / "recipes", Path(sttool.__file__).resolve().parents[1] / "recipes"):
        candidates.append(recipes / folder / SUITE_FILE)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise SttoolError(f"suite '{name}': no such file, and no recipes/{folder}/{SUITE_FILE} here or beside sttool "
                      "(suites: micro-vtab, vtab, transfer, or a path to a suite.yaml)")


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, (str, int, float)) for v in value):
        raise SttoolError(f"{where}: expected a list of values, got {value!r}")
    return tuple(str(v) for v in value)


def _keys(data: Any, valid: tuple[str, ...], where: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise SttoolError(f"{where}: expected a mapping, got {type(data).__name__}")
    for key in data:
        if key not in valid:
            raise SttoolError(f"{where}.{key}: unknown key; {closest(str(key), valid)}")
    return data


def load_suite(name: str) -> Suite:
    """Read and validate a suite file (see the module docstring)."""
    path = suite_path(name)
    where = str(path)
    data = _keys(yaml.safe_load(path.read_text(encoding="utf-8")) or {}, SUITE_KEYS, where)
    for key in ("name", "root", "groups", "methods"):
        if key not in data:
            raise SttoolError(f"{where}: '{key}' is missing")
    groups = {str(g): _strings(tasks, f"{where}:groups.{g}") for g, tasks in _keys(data["groups"], tuple(data["groups"]), f"{where}:groups").items()}
    every = [task for tasks in groups.values() for task in tasks]
    if len(set(every)) != len(every):
        raise SttoolError(f"{where}:groups: a task is listed twice")
    methods = {}
    for method, spec in _keys(data["methods"], tuple(data["methods"]), f"{where}:methods").items():
        spec = _keys(spec, METHOD_KEYS, f"{where}:methods.{method}")
        grid = _strings(spec.get("grid", []), f"{where}:methods.{method}.grid")
        if "value" not in spec:
            raise SttoolError(f"{where}:methods.{method}: 'value' is missing (the {data.get('grid_key', 'optim.lr')} used without a grid)")
        methods[str(method)] = BenchMethod(str(method), _strings(spec.get("overrides", []), f"{where}:methods.{method}.overrides"),
                                           str(spec["value"]), grid, str(spec.get("summary", "")))
    defaults = _strings(data.get("default_methods", list(methods)), f"{where}:default_methods")
    quick = _keys(data.get("quick", {}), ("tasks", "overrides"), f"{where}:quick")
    suite = Suite(str(data["name"]), path, str(data["root"]), path.parent / data["recipe"] if data.get("recipe") else None,
                  str(data.get("grid_key", "optim.lr")), groups, methods, defaults,
                  _strings(quick.get("tasks", every), f"{where}:quick.tasks"), _strings(quick.get("overrides", []), f"{where}:quick.overrides"))
    check_names(suite, list(suite.default_methods), "methods", f"{where}:default_methods")
    check_names(suite, list(suite.quick_tasks), "tasks", f"{where}:quick.tasks")
    return suite


def check_names(suite: Suite, names: list[str], kind: str, where: str) -> None:
    """Refuse a method or task the suite does not have, naming the closest one."""
    valid = tuple(suite.methods) if kind == "methods" else suite.tasks
    for name in names:
        if name not in valid:
            raise SttoolError(f"{where}: '{name}' is not one of the {suite.name} {kind}; {closest(name, valid)}")
