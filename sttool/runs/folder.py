"""A run on disk: the folder layout (resolved recipe, environment, metrics as JSON lines, checkpoints,
results, exits, plots) and the writers of its files. Only the main process writes."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, Any

import yaml

from sttool.errors import SttoolError

RECIPE_FILE = "recipe.yaml"
ENV_FILE = "env.json"
METRICS_FILE = "metrics.jsonl"
RESULTS_FILE = "results.json"
EXITS_FILE = "exits.json"
CHECKPOINTS = "checkpoints"
LAST = f"{CHECKPOINTS}/last.safetensors"
BEST = f"{CHECKPOINTS}/best.safetensors"
PLOTS_DIR = "plots"
ADAPTER_DIR = "adapter"  # in a run folder: what to share
TENSORBOARD_DIR = "tensorboard"
MLRUNS_DIR = "mlruns"  # mlflow's local store, when MLFLOW_TRACKING_URI is not set
WANDB_DIR = "wandb"
# What --overwrite removes: everything a run writes, so no file of the old run outlives it
RUN_ENTRIES = (RECIPE_FILE, ENV_FILE, METRICS_FILE, RESULTS_FILE, EXITS_FILE, CHECKPOINTS, PLOTS_DIR, ADAPTER_DIR,
               TENSORBOARD_DIR, MLRUNS_DIR, WANDB_DIR)
LOCK_FILE = ".lock"  # flock-ed by the process writing the run (the kernel releases it when that process ends)
DISK_ERRORS = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded", errno.EACCES: "permission denied",
               errno.EPERM: "permission denied", errno.EROFS: "the file system is read-only"}


def disk_error(err: OSError, path: Path | str) -> SttoolError:
    """A one-line error for a failed write: the path, what went wrong, and what to do."""
    what = DISK_ERRORS.get(err.errno or 0, err.strerror or str(err))
    return SttoolError(f"cannot write {path}: {what}; free space or fix the folder's permissions, then run again "
                       "(a run continues with --resume from its last checkpoint)")


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

    def check_new(self, resume: bool) -> None:
        """Refuse, before anything is written, a new run over an old one or a resume without a checkpoint."""
        if resume:
            if not self.last.is_file():
                raise SttoolError(f"--resume: {self.last} does not exist; start the run without --resume")
        elif self.last.is_file() or self.best.is_file():
            raise SttoolError(
                f"{self.path} already holds a run; continue it with --resume, start again with --overwrite, or set name=... or output_dir=..."
            )

    def prepare(self, recipe: dict[str, Any], resume: bool, overwrite: bool = False) -> None:
        """Create the folder and record the recipe and environment; with ``overwrite``, clear the earlier
        run's own files first (nothing else); with ``resume``, leave the run's records as they are (a
        resumed run is the same run), apart from repairing a metrics line a crash tore."""
        if resume and overwrite:
            raise SttoolError("--resume continues the run in the folder and --overwrite replaces it: give one of them")
        if not overwrite:
            self.check_new(resume)
        try:
            if overwrite:
                for name in RUN_ENTRIES:
                    entry = self.path / name
                    if entry.is_dir():
                        shutil.rmtree(entry)
                    elif entry.exists():
                        entry.unlink()
            self.path.mkdir(parents=True, exist_ok=True)
            if resume:
                self.repair_metrics()
                return
            write_text(self.path / RECIPE_FILE, yaml.safe_dump(recipe, sort_keys=False))
            write_text(self.path / ENV_FILE, json.dumps(environment(), indent=2))
        except OSError as err:
            raise disk_error(err, self.path) from None

    def check_free_space(self, needed: int) -> None:
        """Refuse to start when the disk cannot take the run's checkpoints, rather than fail after an epoch."""
        try:
            free = shutil.disk_usage(self.path).free
        except OSError:
            return  # the folder's disk cannot be asked; the writes will tell
        if free < needed:
            raise SttoolError(f"{self.path}: {free / 1e6:.1f} MB free on its disk, but the run's checkpoints need about "
                              f"{needed / 1e6:.1f} MB; free space, or set output_dir to another disk")

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Own the run folder while writing it: a second process on the same folder gets a one-line error
        naming the holder. The lock is an ``flock`` the kernel drops when its process ends, so a crash or
        ``kill -9`` leaves no stale lock on a local disk."""
        created = not self.path.exists()
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            handle: IO[str] = open(self.path / LOCK_FILE, "a+", encoding="utf-8")
        except OSError as err:
            raise disk_error(err, self.path / LOCK_FILE) from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise SttoolError(f"{self.path} is in use by {holder}; wait for it to end or stop it. If no such process runs "
                              f"(a run on another machine that crashed, on a network disk), delete {self.path / LOCK_FILE}") from None
        try:
            handle.seek(0)
            handle.truncate()
            handle.write(f"process {os.getpid()} on {socket.gethostname()}, started {time.strftime('%Y-%m-%d %H:%M:%S')}: "
                         f"{' '.join(sys.argv)}")
            handle.flush()
            yield
        finally:
            # the file stays (unlinking it would let two later processes lock two different files); only a folder
            # this call created and nothing else wrote to is removed, so a refused command leaves no trace
            if created and [p.name for p in self.path.iterdir()] == [LOCK_FILE]:
                with suppress(OSError):
                    (self.path / LOCK_FILE).unlink()
                    self.path.rmdir()
            handle.close()  # releases the flock

    trackers: Trackers | None = None  # set by the run: trackers that mirror metrics.jsonl

    def log(self, record: dict[str, Any]) -> None:
        """Append one metrics record (with a timestamp) to ``metrics.jsonl``, and hand it to the trackers."""
        if self.trackers is not None:
            self.trackers.log(record)
        path = self.path / METRICS_FILE
        try:
            with open(path, "a", encoding="utf-8") as handle:
                handle.write(json.dumps({"time": round(time.time(), 3), **record}) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as err:
            raise disk_error(err, path) from None

    def records(self) -> list[dict[str, Any]]:
        """The metrics records; a line a crash tore (not valid JSON) is left out."""
        return self._read_metrics()[0]

    def _read_metrics(self) -> tuple[list[dict[str, Any]], list[int]]:
        path = self.path / METRICS_FILE
        if not path.is_file():
            return [], []
        records, torn = [], []
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                torn.append(number)
                continue
            if isinstance(record, dict):
                records.append(record)
            else:
                torn.append(number)
        return records, torn

    def repair_metrics(self) -> list[int]:
        """Rewrite ``metrics.jsonl`` without the lines a crash tore; returns their numbers (1-based)."""
        records, torn = self._read_metrics()
        if torn:
            write_text(self.path / METRICS_FILE, "".join(json.dumps(r) + "\n" for r in records))
        return torn

    def write_results(self, results: dict[str, Any]) -> None:
        write_text(self.path / RESULTS_FILE, json.dumps(results, indent=2))

    @property
    def exits_file(self) -> Path:
        return self.path / EXITS_FILE

    def write_exits(self, report: dict[str, Any]) -> Path:
        """``exits.json``: the calibrated exit thresholds, the accuracy/GFLOPs curve, the operating point."""
        write_text(self.exits_file, json.dumps(report, indent=2))
        return self.exits_file

    def read_exits(self) -> dict[str, Any] | None:
        """The run's ``exits.json``, or None when it has none (no exits, or not calibrated yet)."""
        return json.loads(self.exits_file.read_text(encoding="utf-8")) if self.exits_file.is_file() else None

    def require_exits(self) -> dict[str, Any]:
        """The run's exits.json, or an error naming the missing file and how runs get one."""
        if not self.path.is_dir():
            raise SttoolError(f"no run folder at {self.path}")
        exits = self.read_exits()
        if exits is None:
            raise SttoolError(f"{self.exits_file} not found: this run has no calibrated exits "
                              "(train with model.exit_layers set, e.g. [4, 8])")
        return exits


def write_text(path: Path, text: str) -> None:
    """Write a file atomically (a crash leaves the old file or the new one, never half of one); a full
    disk or a read-only folder is a one-line error naming the file, and the old file stays."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as err:
        with suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise disk_error(err, path) from None


def git_commit() -> str | None:
    """The commit of the sttool source tree, when it is a git checkout."""
    source = Path(__file__).resolve().parents[2]  # sttool/runs/folder.py -> the checkout
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
        # what makes the same seed give other figures on another machine: the CPU's kernels and the
        # thread count change the order of floating-point sums (the data order does not depend on them)
        "cpu": cpu_name(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(),
        "command": sys.argv,
    }


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else what ``platform`` says)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


TRACKERS = ("tensorboard", "wandb", "mlflow")
TRACKER_EXTRAS = {"tensorboard": ("tensorboard", "tensorboard"), "wandb": ("wandb", "wandb"), "mlflow": ("mlflow", "mlflow")}


def flatten(record: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """The numbers of a metrics record as ``val/top1``-style keys (lists and text left out)."""
    out: dict[str, float] = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}/"))
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and key not in ("epoch", "time"):
            out[name] = float(value)
    return out


class Trackers:
    """The experiment trackers of ``train.loggers``: each gets the numbers ``metrics.jsonl`` gets, at the
    epoch as step, and the resolved recipe once. TensorBoard writes under ``RUN/tensorboard``; W&B and
    MLflow keep their own settings (``WANDB_MODE=offline``, ``MLFLOW_TRACKING_URI``; MLflow defaults to
    ``RUN/mlruns`` here)."""

    def __init__(self, names: list[str], run: RunDir, recipe: dict[str, Any]) -> None:
        self.names, self.run = list(names), run
        self.writers: dict[str, Any] = {}
        for name in self.names:
            module, extra = TRACKER_EXTRAS[name]
            import importlib.util

            if importlib.util.find_spec(module) is None:
                raise SttoolError(f"train.loggers: {name} needs the {module} package: pip install 'sttool[{extra}]'")
        text = yaml.safe_dump(recipe, sort_keys=False)
        if "tensorboard" in self.names:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(log_dir=str(run.path / TENSORBOARD_DIR))
            writer.add_text("recipe", f"```yaml\n{text}```")
            self.writers["tensorboard"] = writer
        if "wandb" in self.names:
            import wandb

            self.writers["wandb"] = wandb.init(project=os.environ.get("WANDB_PROJECT", "sttool"), name=recipe.get("name"),
                                               dir=str(run.path), config=recipe, reinit=True)
        if "mlflow" in self.names:
            import mlflow

            if "MLFLOW_TRACKING_URI" not in os.environ:
                mlflow.set_tracking_uri((run.path / MLRUNS_DIR).resolve().as_uri())
            mlflow.start_run(run_name=recipe.get("name"))
            mlflow.log_params({k: str(v)[:500] for k, v in _flat_params(recipe).items()})
            mlflow.log_text(text, "recipe.yaml")
            self.writers["mlflow"] = mlflow

    def log(self, record: dict[str, Any]) -> None:
        numbers = flatten(record)
        step = int(record.get("epoch", 0))
        event = record.get("event", "")
        numbers = {f"{event}/{k}" if event in ("test", "train") and not k.startswith(("val/", "test/")) else k: v
                   for k, v in numbers.items()}
        if "tensorboard" in self.writers:
            for key, value in numbers.items():
                self.writers["tensorboard"].add_scalar(key, value, step)
            self.writers["tensorboard"].flush()
        if "wandb" in self.writers:
            self.writers["wandb"].log(numbers, step=step)
        if "mlflow" in self.writers:
            self.writers["mlflow"].log_metrics({k.replace("/", "_"): v for k, v in numbers.items()}, step=step)

    def close(self) -> None:
        if "tensorboard" in self.writers:
            self.writers["tensorboard"].close()
        if "wandb" in self.writers:
            self.writers["wandb"].finish()
        if "mlflow" in self.writers:
            self.writers["mlflow"].end_run()


def _flat_params(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(_flat_params(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out
