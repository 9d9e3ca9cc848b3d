"""``sttool profile`` as one call: GFLOPs always, and on request throughput, training-step memory and
time, and the expected GFLOPs of a multi-exit run, each beside the methods it should be judged against.

What it profiles: a model configuration (defaults, a recipe, options), built cheaply with random
weights (nothing is downloaded), or a tuned run folder or checkpoint, profiled as trained through the
checkpoint's own recipe. A multi-exit run's expected cost at its calibrated thresholds comes from its
``exits.json``: the thresholds were fitted on validation (MSDNet's budgeted batch classification) and
the cost is the test split's when the run has one: sum over exits of (share leaving there) x
(cumulative cost to that exit, every exit evaluated on the way included).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from sttool.config.compose import read_recipe_data
from sttool.config.schema import bind, to_dict
from sttool.errors import SttoolError
from sttool.models.build import build_model
from sttool.models.config import ModelConfig
from sttool.models.vit import SparseViT
from sttool.profiling.flops import baseline_config, gflops_report
from sttool.profiling.timing import compare_throughput, compare_training_steps
from sttool.runs.checkpoint import read_checkpoint
from sttool.runs.folder import RunDir
from sttool.runs.load import find_checkpoint, load_run, run_folder_of
from sttool.runs.recipe import bind_recipe
from sttool.runtime import DEVICES, PRECISIONS, input_shape, resolve_device, seeded

CHECKPOINT_SUFFIX = ".safetensors"
DEFAULT_BATCH = {"cuda": 64, "cpu": 8}  # a CPU takes seconds per ViT-B batch of 8 already
MEMORY_BASELINES = ("adaptformer", "full")


@dataclass
class ProfileRequest:
    """Which measurements to make, and how. ``batch_size`` None: 64 on CUDA, 8 on the CPU."""

    throughput: bool = False
    memory: bool = False
    exits: bool = False
    batch_size: int | None = None
    device: str = "auto"
    dtype: str = "fp32"
    rounds: int = 10
    warmup: int = 2
    compile: bool = False  # time torch.compile'd models (both the model and its baseline)

    def check(self) -> None:
        if self.device not in DEVICES:
            raise SttoolError(f"--device: '{self.device}' is not valid; valid: {', '.join(DEVICES)}")
        if self.dtype not in PRECISIONS:
            raise SttoolError(f"--dtype: '{self.dtype}' is not valid; valid: {', '.join(PRECISIONS)}")
        if self.batch_size is not None and self.batch_size < (2 if self.memory else 1):
            raise SttoolError(f"--batch-size: {self.batch_size} is too small; at least 1, and 2 with --memory "
                              "(a training step's BatchNorm head needs 2 samples)")
        if self.rounds < 1 or self.warmup < 0:
            raise SttoolError(f"--rounds {self.rounds} must be at least 1 and --warmup {self.warmup} at least 0")



@dataclass
class ProfileTarget:
    """A model configuration, and the tuned checkpoint and run folder when profiling a run."""

    config: ModelConfig
    checkpoint: Path | None = None
    run_dir: Path | None = None

    def build(self, device: torch.device) -> SparseViT:
        """The model to time: the tuned one from its checkpoint, or the configuration with random weights."""
        if self.checkpoint is not None:
            return load_run(self.checkpoint, device)[0]
        return build_random(self.config, device)

    def describe(self) -> dict[str, Any]:
        if self.checkpoint is None:
            return {"kind": "configuration", "weights": "random"}
        return {"kind": "run", "run_dir": str(self.run_dir), "checkpoint": str(self.checkpoint)}


def build_random(config: ModelConfig, device: torch.device) -> SparseViT:
    """``config``'s model with seeded random weights: timing and memory do not depend on the values."""
    with seeded(0):
        return build_model(config=replace(config, weights=None)).to(device)


def is_run(path: Path) -> bool:
    """A folder (a run) or a safetensors file (a checkpoint), as opposed to a recipe file."""
    return path.is_dir() or path.suffix == CHECKPOINT_SUFFIX


def run_target(path: Path) -> ProfileTarget:
    """A run folder or checkpoint: the checkpoint evaluate would use, and the recipe saved in it."""
    checkpoint = find_checkpoint(path)
    _, _, meta = read_checkpoint(checkpoint)
    recipe = bind_recipe(meta["recipe"], f"{checkpoint} (recipe):")
    run_dir = path if path.is_dir() else run_folder_of(checkpoint)
    return ProfileTarget(recipe.model, checkpoint, run_dir)


def resolve_target(path: Path | None, options: dict[str, Any]) -> ProfileTarget:
    """The target named by ``path`` (None: the paper's configuration), with ``options`` (ModelConfig
    fields, None = not given) applied to a configuration; a tuned run takes none of them."""
    given = sorted(name for name, value in options.items() if value is not None)
    if path is not None and is_run(path):
        if given:
            raise SttoolError(f"model options ({', '.join(given)}) change a configuration; {path} is a tuned run, "
                              "profiled as trained (give its recipe.yaml to profile variants)")
        return run_target(path)
    config = ModelConfig()
    if path is not None:
        if not path.is_file():
            raise SttoolError(f"{path}: no recipe file, run folder or checkpoint there")
        config = bind(ModelConfig, read_recipe_data(path).get("model"), f"{path}: model")
    merged = {**to_dict(config), **{name: options[name] for name in given}}
    return ProfileTarget(bind(ModelConfig, merged, "profile options"))


def exits_profile(run_dir: Path) -> dict[str, Any]:
    """Per-exit costs and accuracy, and the expected GFLOPs at the operating point against no early exit."""
    exits = RunDir(run_dir).require_exits()
    point = exits.get("operating_point")
    split = "test" if point is not None and "test" in point else "val"
    expected = point[split]["gflops"] if point is not None else None
    return {
        "exit_layers": exits["exit_layers"],
        "cost_to_exit_gflops": exits["cost_to_exit_gflops"],
        "per_exit_top1": exits["per_exit_top1"],
        "no_exit_gflops": exits["no_exit_gflops"],
        "rule": exits["rule"],
        "operating_point": point,
        "split": split,
        "expected_gflops": expected,
        "expected_ratio": None if expected is None else expected / exits["no_exit_gflops"],
    }


def profile_report(target: ProfileTarget, request: ProfileRequest) -> dict[str, Any]:
    """GFLOPs of the target beside its dense backbone, plus the requested measurements."""
    request.check()
    if request.exits and target.run_dir is None:
        raise SttoolError("--exits reads exits.json of a trained run: give a run folder or its checkpoint, not a recipe")
    report = gflops_report(target.config)
    report["source"] = target.describe()
    if request.exits:
        assert target.run_dir is not None  # checked above
        report["exits"] = exits_profile(target.run_dir)
    if not (request.throughput or request.memory):
        return report
    device = resolve_device(request.device)
    batch = request.batch_size or DEFAULT_BATCH[device.type]
    model = target.build(device)
    shape = input_shape(model)
    method = target.config.method
    settings: dict[str, Any] = {"batch_size": batch, "device": device, "dtype": request.dtype, "rounds": request.rounds,
                                "warmup": request.warmup}
    unit = "clips/s" if len(shape) == 4 else "images/s"
    if request.throughput:
        dense = build_random(baseline_config(target.config, "full"), device)
        models: dict[str, Any] = {"dense": dense, method: model}
        if request.compile:
            models = {name: torch.compile(m) for name, m in models.items()}
        timed = compare_throughput(models, shape, baseline="dense", **settings)
        first = next(iter(timed.values()))
        report["throughput"] = {
            "device": first["device"], "dtype": first["dtype"], "compiled": request.compile, "batch_size": batch, "rounds": request.rounds,
            "input_shape": list(shape), "unit": unit, "speedup": timed[method]["speedup"],
            "models": {name: {k: v for k, v in result.items() if k in ("images_per_s", "ms_per_batch", "speedup")}
                       for name, result in timed.items()},
        }
        del dense
    if request.memory:
        models = {method: model}
        for name in MEMORY_BASELINES:
            if name != method:
                models[name] = build_random(baseline_config(target.config, name), device)
        steps = compare_training_steps(models, shape, num_classes=model.num_classes,
                                       baseline="adaptformer", **settings)
        report["memory"] = {**steps, "input_shape": list(shape), "unit": unit}
    return report
