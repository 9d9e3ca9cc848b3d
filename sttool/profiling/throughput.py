"""Inference throughput, measured the ToMe way: random input, eval mode, warm-up, synchronised timing.

Several models are timed in interleaved rounds (A, B, A, B, ...) so that they see the same machine
state; the median time per batch is reported, which shrugs off the occasional slow round. A speed-up
against a baseline model is the median of the per-round ratios, robust on a shared machine too.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch
from torch import nn

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def sync(device: torch.device) -> None:
    """Wait for queued CUDA work, so that a timer measures the work and not its launch."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def autocast_context(device: torch.device, dtype: str) -> AbstractContextManager:
    """fp32 runs as is; bf16 and fp16 run under autocast on the device (CPU included)."""
    return torch.autocast(device.type, dtype=DTYPES[dtype]) if dtype != "fp32" else nullcontext()


def median_ratio(numerators: list[float], denominators: list[float]) -> float:
    """Median of the per-round ratios: a slow round slows both models of that round alike."""
    return statistics.median(n / d for n, d in zip(numerators, denominators, strict=True))


def compare_throughput(
    models: Mapping[str, nn.Module],
    input_shape: tuple[int, ...],
    batch_size: int,
    device: str | torch.device = "cpu",
    dtype: str = "fp32",
    rounds: int = 20,
    warmup: int = 3,
    baseline: str | None = None,
) -> dict[str, dict[str, Any]]:
    """Images (or clips) per second of each model on the same random batch, timed in turns.

    ``input_shape`` excludes the batch dimension ((3, H, W), or (3, T, H, W) for clips); ``dtype``
    is fp32, or bf16/fp16 autocast. With ``baseline`` (one of the names) every entry also gets
    ``speedup``: how many times faster than the baseline it ran.
    """
    device = torch.device(device)
    inputs = torch.randn(batch_size, *input_shape, device=device)  # (B, 3, H, W) or (B, 3, T, H, W)
    models = {name: model.to(device).eval() for name, model in models.items()}
    times: dict[str, list[float]] = {name: [] for name in models}
    with torch.inference_mode(), autocast_context(device, dtype):
        for _ in range(warmup):
            for model in models.values():
                model(inputs)
        for _ in range(rounds):
            for name, model in models.items():
                sync(device)
                start = time.perf_counter()
                model(inputs)
                sync(device)
                times[name].append(time.perf_counter() - start)
    results = {
        name: {
            "images_per_s": batch_size / statistics.median(samples),
            "ms_per_batch": 1000 * statistics.median(samples),
            "batch_size": batch_size,
            "dtype": dtype,
            "device": describe_device(device),
        }
        for name, samples in times.items()
    }
    if baseline is not None:
        for name, result in results.items():
            result["speedup"] = median_ratio(times[baseline], times[name])
    return results


def describe_device(device: torch.device) -> str:
    """A human-readable device name for reports (GPU model, or CPU threads)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU, {torch.get_num_threads()} threads"
