"""A run folder: resolved recipe, environment, metrics as JSON lines, checkpoints, results, plots."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from sttool.errors import SttoolError
from sttool.plotting import PLOTS_DIR

RECIPE_FILE = "recipe.yaml"
ENV_FILE = "env.json"
METRICS_FILE = "metrics.jsonl"
RESULTS_FILE = "results.json"
EXITS_FILE = "exits.json"
CHECKPOINTS = "checkpoints"
LAST = f"{CHECKPOINTS}/last.safetensors"
BEST = f"{CHECKPOINTS}/best.safetensors"
RUN_ENTRIES = (RECIPE_FILE, ENV_FILE, METRICS_FILE, RESULTS_FILE, EXITS_FILE, CHECKPOINTS, PLOTS_DIR)  # what --overwrite removes


class RunDir:
    """Paths and writers of one run's folder. Only the main process writes."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @property
    def last(self) -> Path:
        return self.path / LAST

    @property
    def best(self) -> Path:
        return self.path / BEST

    def prepare(self, recipe: dict[str, Any], resume: bool, overwrite: bool = False) -> None:
        """Create the folder (or check it for ``--resume``; or, with ``overwrite``, clear the earlier
        run's own files, nothing else) and record the recipe and environment."""
        if overwrite:
            for name in RUN_ENTRIES:
                entry = self.path / name
                if entry.is_dir():
                    shutil.rmtree(entry)
                elif entry.exists():
                    entry.unlink()
        if resume:
            if not self.last.is_file():
                raise SttoolError(f"--resume: {self.last} does not exist; start the run without --resume")
        elif self.last.is_file() or self.best.is_file():
            raise SttoolError(
                f"{self.path} already holds a run; continue it with --resume, start again with --overwrite, or set name=... or output_dir=..."
            )
        self.path.mkdir(parents=True, exist_ok=True)
        write_text(self.path / RECIPE_FILE, yaml.safe_dump(recipe, sort_keys=False))
        write_text(self.path / ENV_FILE, json.dumps(environment(), indent=2))

    def log(self, record: dict[str, Any]) -> None:
        """Append one metrics record (with a timestamp) to ``metrics.jsonl``."""
        with open(self.path / METRICS_FILE, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"time": round(time.time(), 3), **record}) + "\n")

    def records(self) -> list[dict[str, Any]]:
        path = self.path / METRICS_FILE
        if not path.is_file():
            return []
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]

    def write_results(self, results: dict[str, Any]) -> None:
        write_text(self.path / RESULTS_FILE, json.dumps(results, indent=2))


def write_text(path: Path, text: str) -> None:
    """Write a file atomically (a crash leaves the old file or the new one, never half of one)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def git_commit() -> str | None:
    """The commit of the sttool source tree, when it is a git checkout."""
    source = Path(__file__).resolve().parents[2]
    try:
        done = subprocess.run(["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def environment() -> dict[str, Any]:
    """Library versions, git commit and machine, for reproducing a run."""
    import timm
    import torch

    import sttool

    return {
        "sttool": sttool.__version__,
        "git_commit": git_commit(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "timm": timm.__version__,
        "cuda": torch.version.cuda,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "platform": platform.platform(),
        "command": sys.argv,
    }
