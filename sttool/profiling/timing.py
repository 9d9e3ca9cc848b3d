"""Inference throughput, measured the ToMe way: random input, eval mode, warm-up, synchronised timing.

Several models are timed in interleaved rounds (A, B, A, B, ...) so that they see the same machine
state; the median time per batch is reported, which shrugs off the occasional slow round. A speed-up
against a baseline model is the median of the per-round ratios, robust on a shared machine too.

Peak memory and time of one training step (forward, backward, optimiser step), methods side by side.

Memory is what CUDA's caching allocator reports (``torch.cuda.max_memory_allocated`` after
``reset_peak_memory_stats``), for each model measured alone on the GPU while the others wait on the
CPU, so a peak holds that model's weights, gradients, AdamW state, activations and the batch. The
step is measured after warm-up steps, so the optimiser state already exists, as in a real run. The
CPU has no such counter: there the memory is None with a note, and only the time is measured.

Time: all models on the device, one step each in alternating rounds (as ``compare_throughput``).
The optimiser runs with learning rate 0, so it does all of its arithmetic but leaves the weights as
they were; BatchNorm statistics are restored afterwards, so profiling never changes a tuned model.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sttool.models.build import trainable_parameters
from sttool.runtime import autocast, describe_device, resolve_precision, sync


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
    is a precision under ``sttool.runtime``'s policy (the entry's ``dtype`` says what really ran).
    With ``baseline`` (one of the names) every entry also gets ``speedup``: how many times faster
    than the baseline it ran.
    """
    device = torch.device(device)
    precision = resolve_precision(dtype, device)
    inputs = torch.randn(batch_size, *input_shape, device=device)  # (B, 3, H, W) or (B, 3, T, H, W)
    models = {name: model.to(device).eval() for name, model in models.items()}
    times: dict[str, list[float]] = {name: [] for name in models}
    with torch.inference_mode(), autocast(device, precision):
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
            "dtype": precision.name,
            "device": describe_device(device),
        }
        for name, samples in times.items()
    }
    if baseline is not None:
        for name, result in results.items():
            result["speedup"] = median_ratio(times[baseline], times[name])
    return results


CPU_MEMORY_NOTE = ("peak memory is measured on CUDA only (torch.cuda.max_memory_allocated); "
                   "on the CPU only the time of a training step is measured")
MIB = 2**20


def step_loss(model: nn.Module, inputs: Tensor, labels: Tensor) -> Tensor:
    """Cross-entropy of the final head, summed with every early exit's when the model has exits."""
    if getattr(model, "exits", None) is not None:
        sparse: Any = model
        return torch.stack([F.cross_entropy(logits.float(), labels) for _, logits in sparse.forward_exits(inputs)]).sum()
    return F.cross_entropy(model(inputs).float(), labels)


def training_step(model: nn.Module, optimizer: torch.optim.Optimizer, inputs: Tensor, labels: Tensor, dtype: str) -> None:
    """Forward, backward and optimiser step of one batch, as the training loop runs them."""
    with autocast(inputs.device, dtype):
        loss = step_loss(model, inputs, labels)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def _optimizer(model: nn.Module) -> torch.optim.Optimizer:
    return torch.optim.AdamW(trainable_parameters(model), lr=0.0)


def peak_step_memory(model: nn.Module, inputs: Tensor, labels: Tensor, dtype: str, warmup: int) -> int:
    """Bytes allocated at the peak of one training step of ``model`` alone on the (CUDA) device of ``inputs``."""
    device = inputs.device
    model.to(device)
    optimizer = _optimizer(model)
    for _ in range(max(1, warmup)):
        training_step(model, optimizer, inputs, labels, dtype)
    sync(device)
    torch.cuda.reset_peak_memory_stats(device)
    training_step(model, optimizer, inputs, labels, dtype)
    sync(device)
    peak = torch.cuda.max_memory_allocated(device)
    del optimizer
    model.to("cpu")
    torch.cuda.empty_cache()
    return peak


def compare_training_steps(
    models: Mapping[str, nn.Module],
    input_shape: tuple[int, ...],
    batch_size: int,
    num_classes: int,
    device: str | torch.device = "cpu",
    dtype: str = "fp32",
    rounds: int = 10,
    warmup: int = 2,
    baseline: str | None = None,
) -> dict[str, Any]:
    """Time (and on CUDA peak memory) of a training step of each model on the same random batch.

    ``input_shape`` excludes the batch dimension. With ``baseline`` (one of the names) every model
    also gets ``time_ratio`` and ``memory_ratio``: its cost as a multiple of the baseline's.
    """
    device = torch.device(device)
    inputs = torch.randn(batch_size, *input_shape, device=device)  # (B, 3, H, W) or (B, 3, T, H, W)
    labels = torch.randint(num_classes, (batch_size,), device=device)
    saved = {name: {k: b.clone() for k, b in model.named_buffers()} for name, model in models.items()}
    for model in models.values():
        model.train()
    peaks: dict[str, int | None] = dict.fromkeys(models)
    if device.type == "cuda":
        for model in models.values():
            model.to("cpu")
        for name, model in models.items():
            peaks[name] = peak_step_memory(model, inputs, labels, dtype, warmup)
    optimizers = {name: _optimizer(model.to(device)) for name, model in models.items()}
    times: dict[str, list[float]] = {name: [] for name in models}
    for round_index in range(warmup + rounds):
        for name, model in models.items():
            sync(device)
            start = time.perf_counter()
            training_step(model, optimizers[name], inputs, labels, dtype)
            sync(device)
            if round_index >= warmup:
                times[name].append(time.perf_counter() - start)
    for name, model in models.items():
        model.load_state_dict(saved[name], strict=False)
        model.eval()
    results: dict[str, Any] = {}
    for name, samples in times.items():
        peak = peaks[name]
        result: dict[str, Any] = {
            "ms_per_step": 1000 * statistics.median(samples),
            "images_per_s": batch_size / statistics.median(samples),
            "peak_memory_mib": None if peak is None else peak / MIB,
        }
        if baseline is not None:
            result["time_ratio"] = median_ratio(samples, times[baseline])
            base_peak = peaks[baseline]
            result["memory_ratio"] = None if peak is None or base_peak is None else peak / base_peak
        results[name] = result
    return {
        "device": describe_device(device), "dtype": resolve_precision(dtype, device).name, "batch_size": batch_size, "rounds": rounds,
        "baseline": baseline, "note": None if device.type == "cuda" else CPU_MEMORY_NOTE, "models": results,
    }
