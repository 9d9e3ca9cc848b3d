"""``sttool profile`` as one call: GFLOPs always, and on request throughput, training-step memory and
time, and the expected GFLOPs of a multi-exit run, each beside the methods it should be judged against.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from sttool.errors import SttoolError
from sttool.profiling.exits import exits_profile
from sttool.profiling.gflops import baseline_config, gflops_report
from sttool.profiling.targets import ProfileTarget, build_random
from sttool.profiling.throughput import DTYPES, compare_throughput
from sttool.profiling.training_step import compare_training_steps

DEVICES = ("auto", "cpu", "cuda")
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

    def check(self) -> None:
        if self.dtype not in DTYPES:
            raise SttoolError(f"--dtype: '{self.dtype}' is not valid; valid: {', '.join(DTYPES)}")
        if self.batch_size is not None and self.batch_size < (2 if self.memory else 1):
            raise SttoolError(f"--batch-size: {self.batch_size} is too small; at least 1, and 2 with --memory "
                              "(a training step's BatchNorm head needs 2 samples)")
        if self.rounds < 1 or self.warmup < 0:
            raise SttoolError(f"--rounds {self.rounds} must be at least 1 and --warmup {self.warmup} at least 0")



def pick_device(choice: str) -> torch.device:
    """``auto``: CUDA when there is a GPU, else the CPU; ``cuda`` without a GPU is an error."""
    if choice not in DEVICES:
        raise SttoolError(f"--device: '{choice}' is not valid; valid: {', '.join(DEVICES)}")
    if choice == "cuda" and not torch.cuda.is_available():
        raise SttoolError("--device cuda: no CUDA GPU is available here; use --device cpu")
    return torch.device("cuda" if choice != "cpu" and torch.cuda.is_available() else "cpu")


def input_shape(model: nn.Module) -> tuple[int, ...]:
    """One sample's shape without the batch: (3, H, W), or (3, T, H, W) for a video model."""
    frames = model.sttool_config.num_frames
    size = tuple(model.patch_embed.img_size)
    return (3, frames, *size) if frames else (3, *size)


def profile_report(target: ProfileTarget, request: ProfileRequest) -> dict[str, Any]:
    """GFLOPs of the target beside its dense backbone, plus the requested measurements."""
    request.check()
    if request.exits and target.run_dir is None:
        raise SttoolError("--exits reads exits.json of a trained run: give a run folder or its checkpoint, not a recipe")
    report = gflops_report(target.config)
    report["source"] = target.describe()
    if request.exits:
        report["exits"] = exits_profile(target.run_dir)
    if not (request.throughput or request.memory):
        return report
    device = pick_device(request.device)
    batch = request.batch_size or DEFAULT_BATCH[device.type]
    model = target.build(device)
    shape = input_shape(model)
    method = target.config.method
    settings = {"batch_size": batch, "device": device, "dtype": request.dtype, "rounds": request.rounds,
                "warmup": request.warmup}
    unit = "clips/s" if len(shape) == 4 else "images/s"
    if request.throughput:
        dense = build_random(baseline_config(target.config, "full"), device)
        timed = compare_throughput({"dense": dense, method: model}, shape, baseline="dense", **settings)
        first = next(iter(timed.values()))
        report["throughput"] = {
            "device": first["device"], "dtype": request.dtype, "batch_size": batch, "rounds": request.rounds,
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
        steps = compare_training_steps(models, shape, num_classes=model.head.out_features,
                                       baseline="adaptformer", **settings)
        report["memory"] = {**steps, "input_shape": list(shape), "unit": unit}
    return report
