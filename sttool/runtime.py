"""Where and how a model runs: the device, one precision policy, device syncs, the input shape, and
seeded blocks that leave the caller's random state alone.

Precision policy (training, evaluation, predict and profile alike): ``fp32`` runs as is. ``bf16``
runs under bf16 autocast on CUDA, and on a CPU that computes bf16 natively (AVX512-BF16 or AMX);
on other CPUs it runs fp32 and says so once, because emulated bf16 there is slower than fp32.
``fp16`` runs under fp16 autocast on CUDA (with loss scaling in training) and as fp32 on a CPU.
"""

from __future__ import annotations

import functools
import random
import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sttool.errors import SttoolError

PRECISIONS = ("fp32", "bf16", "fp16")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
DEVICES = ("auto", "cpu", "cuda")


@functools.cache
def cpu_bf16_native() -> bool:
    """Whether this CPU has bf16 arithmetic (AVX512-BF16 or AMX-BF16), from torch or /proc/cpuinfo."""
    probes = [getattr(torch._C._cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    if any(probe is not None and probe() for probe in probes):
        return True
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


@dataclass(frozen=True)
class Precision:
    """What a requested precision becomes on a device: the autocast dtype (None: fp32) and why."""

    requested: str
    dtype: torch.dtype | None
    note: str | None = None

    @property
    def name(self) -> str:
        return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.dtype]


def resolve_precision(requested: str, device: torch.device) -> Precision:
    """Apply the policy above; ``note`` says when the device runs something else than asked."""
    if requested not in PRECISIONS:
        raise SttoolError(f"precision '{requested}' is not one of {', '.join(PRECISIONS)}")
    if requested == "fp32":
        return Precision(requested, None)
    if device.type == "cuda":
        return Precision(requested, DTYPES[requested])
    if requested == "bf16" and cpu_bf16_native():
        return Precision(requested, torch.bfloat16)
    why = "this CPU has no bf16 arithmetic (AVX512-BF16 or AMX)" if requested == "bf16" else "fp16 autocast is for GPUs"
    return Precision(requested, None, f"{requested} runs as fp32 on the CPU: {why}")


_NOTED: set[str] = set()


def autocast(device: torch.device, precision: str | Precision) -> AbstractContextManager:
    """Autocast for ``precision`` on ``device`` under the policy; its fallback note is printed once per process."""
    resolved = precision if isinstance(precision, Precision) else resolve_precision(precision, device)
    if resolved.note and resolved.note not in _NOTED:
        _NOTED.add(resolved.note)
        print(f"note: {resolved.note}", file=sys.stderr)
    if resolved.dtype is None:
        return nullcontext()
    return torch.autocast(device.type, dtype=resolved.dtype)


def resolve_device(choice: str, local_rank: int = 0) -> torch.device:
    """``auto`` picks CUDA when available; a process of torchrun takes the GPU of its local rank."""
    if choice not in DEVICES:
        raise SttoolError(f"device '{choice}' is not one of {', '.join(DEVICES)}")
    if choice == "auto":
        choice = "cuda" if torch.cuda.is_available() else "cpu"
    if choice == "cuda":
        if not torch.cuda.is_available():
            raise SttoolError("device cuda was asked for but no CUDA GPU is available; use device cpu")
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def sync(device: torch.device) -> None:
    """Wait for queued CUDA work, so that a timer measures the work and not its launch."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def describe_device(device: torch.device) -> str:
    """A human-readable device name for reports (GPU model, or CPU threads)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU, {torch.get_num_threads()} threads"


def input_shape(model: Any) -> tuple[int, ...]:
    """One sample's shape without the batch: (3, H, W), or (3, T, H, W) for a video model."""
    height, width = model.patch_embed.img_size
    frames = getattr(getattr(model, "sttool_config", None), "num_frames", None)
    return (3, frames, height, width) if frames else (3, height, width)


@contextmanager
def seeded(seed: int, device: torch.device | None = None) -> Iterator[None]:
    """Run a block with torch (CPU and ``device``), NumPy and ``random`` seeded from ``seed``, and give the
    caller's random state back afterwards: library code never moves the global random state."""
    devices = [device] if device is not None and device.type == "cuda" else []
    numpy_state, python_state = np.random.get_state(), random.getstate()
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        np.random.seed(seed % 2**32)
        random.seed(seed)
        try:
            yield
        finally:
            np.random.set_state(numpy_state)
            random.setstate(python_state)
