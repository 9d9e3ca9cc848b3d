"""One training epoch: micro-batches, gradient accumulation, the learning-rate schedule, and the faults
a run survives or reports clearly (Ctrl-C/SIGTERM, a non-finite loss, GPU out of memory).

The loop never waits on the device except to show progress: losses and the non-finite flag are kept
as device tensors and read only when a progress renderer shows them and at the end of the epoch.
"""

from __future__ import annotations

import math
import signal
import threading
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from types import FrameType
from typing import Any

import numpy as np
import torch
from torch import nn

from sttool.engine.distributed import DistContext
from sttool.engine.objectives import MixupCutmix
from sttool.engine.sampling import derive_seed
from sttool.errors import SttoolError
from sttool.progress import Progress
from sttool.runs.recipe import Recipe
from sttool.runtime import autocast, seeded

STOP_CHECK_EVERY = 10  # optimiser steps between stop-request agreements across processes
# ``objective(model output, soft targets, labels, foreground masks or None) -> loss``
Objective = Callable[[Any, torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]


def evit_keep_rate(step: int, epoch: int, start_epoch: int, end_epoch: int, steps_per_epoch: int, base: float) -> float:
    """EViT's keep rate at optimiser step ``step`` (0-based, counted over the run) of ``epoch``: 1 before
    ``start_epoch``, then a half cosine from 1 down to ``base`` until ``end_epoch``, then ``base``
    (``adjust_keep_rate`` in github.com/youweiliang/evit, helpers.py)."""
    if epoch < start_epoch:
        return 1.0
    if epoch >= end_epoch:
        return base
    total = steps_per_epoch * (end_epoch - start_epoch)
    done = step - steps_per_epoch * start_epoch
    return base + (1.0 - base) * (math.cos(done / total * math.pi) + 1) * 0.5


def learning_rate(step: int, total_steps: int, warmup_steps: int, peak: float, floor: float = 0.0) -> float:
    """Learning rate of optimiser step ``step`` (0-based) out of ``total_steps``."""
    if step < warmup_steps:
        return peak * step / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return floor + (peak - floor) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


class StopRequest:
    """Turns the first SIGINT or SIGTERM into a request to checkpoint and stop; a second Ctrl-C aborts."""

    def __init__(self) -> None:
        self.requested = False
        self.signal_name = ""
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True
        self.signal_name = signal.Signals(signum).name


class NonFiniteLoss(SttoolError):
    """The loss became NaN or infinite; the run stops without overwriting the last good checkpoint."""


def out_of_memory_message(micro_batch: int, accum_steps: int) -> str:
    return (
        f"GPU out of memory with {micro_batch} samples per process and step; keep the global batch with "
        f"train.accum_steps={accum_steps * 2}, or lower train.batch_size"
    )


@dataclass
class StepCounter:
    """Where the run is: epoch, optimiser step within it, and optimiser steps overall."""

    epoch: int = 0
    step: int = 0
    global_step: int = 0


@dataclass
class EpochResult:
    loss: float  # mean over the epoch's micro-batches, those before a resume included
    steps: int
    stopped: bool
    skipped: list
    loss_sum: float = 0.0  # what the mean is made of, for a resume mid-epoch
    count: int = 0


class EpochRunner:
    """Runs training epochs of ``model`` (maybe DDP-wrapped), minimising
    ``objective(model(x), soft targets, labels, masks)``."""

    def __init__(self, recipe: Recipe, model: nn.Module, objective: Objective,
                 optimizer: torch.optim.Optimizer, loader: Any, sampler: Any,
                 device: torch.device, context: DistContext, num_classes: int) -> None:
        train = recipe.train
        self.recipe, self.model, self.objective, self.optimizer = recipe, model, objective, optimizer
        self.loader, self.sampler, self.device, self.context = loader, sampler, device, context
        self.mixer = MixupCutmix(num_classes, train.label_smoothing, train.mixup, train.cutmix,
                                 train.mixup_prob, train.mixup_switch_prob)
        self.steps_per_epoch = sampler.steps()
        self.total_steps = train.epochs * self.steps_per_epoch
        self.warmup_steps = round(recipe.optim.warmup_epochs * self.steps_per_epoch)
        self.peak_lr = recipe.optim.peak_lr(train.batch_size)
        self.shrink = recipe.keep_rate_schedule()  # (start epoch, epochs of shrinking); (0, 0): fixed keep rate
        self.sparse: Any = getattr(model, "module", model)  # the SparseViT under DDP and the training views
        self.sparse = getattr(self.sparse, "model", self.sparse)
        self.scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda" and train.precision == "fp16")
        self.trained = [p for p in model.parameters() if p.requires_grad]

    def run_epoch(self, counter: StepCounter, progress: Progress, stop: StopRequest,
                  carried: tuple[float, int] | None = None) -> EpochResult:
        """Train from ``counter`` to the end of its epoch (or a stop request); updates ``counter``.
        ``carried`` is (loss sum, micro-batches) of this epoch before a resume."""
        train = self.recipe.train
        self.model.train()
        self.sampler.set_epoch(counter.epoch, counter.step)
        self._schedule_keep_rate(counter)
        task = progress.task(f"epoch {counter.epoch + 1}/{train.epochs}", self.steps_per_epoch, counter.step)
        started, seen = time.perf_counter(), 0
        before_sum, before_count = carried or (0.0, 0)
        loss_sum = torch.zeros((), device=self.device)
        non_finite = torch.zeros((), dtype=torch.bool, device=self.device)
        micro, micro_done, skipped, images = 0, 0, [], 0
        self.optimizer.zero_grad(set_to_none=True)
        for batch in self.loader:
            skipped += batch.skipped
            last_micro = (micro + 1) % train.accum_steps == 0
            try:
                loss = self._forward_backward(batch, counter.global_step, micro, last_micro)
            except torch.OutOfMemoryError:
                raise SttoolError(out_of_memory_message(batch.inputs.shape[0], train.accum_steps)) from None
            loss_sum += loss
            non_finite |= ~torch.isfinite(loss)
            micro += 1
            micro_done += 1
            images += batch.inputs.shape[0] * self.context.world_size
            if not last_micro:
                continue
            lr = self._optimizer_step(counter.global_step)
            counter.step += 1
            counter.global_step += 1
            self._schedule_keep_rate(counter)  # the keep rate of the next step

            def shown_loss(total=loss_sum, count=micro_done, flag=non_finite) -> str:
                self._raise_if_non_finite(flag, counter, collective=False)  # shown on the main process only
                return f"{(float(total) + before_sum) / (count + before_count):.4f}"

            seen += images
            speed = f"{seen / max(time.perf_counter() - started, 1e-9):.1f} img/s"
            task.advance(1, loss=shown_loss, lr=f"{lr:.2e}", speed=speed)
            images = 0
            if self._should_stop(stop, counter):
                task.close()
                return self._result(loss_sum, micro_done, carried, counter, True, skipped)
        task.close()
        self._raise_if_non_finite(non_finite, counter, collective=True)
        return self._result(loss_sum, micro_done, carried, counter, False, skipped)

    @staticmethod
    def _result(loss_sum: torch.Tensor, count: int, carried: tuple[float, int] | None, counter: StepCounter,
                stopped: bool, skipped: list) -> EpochResult:
        total, done = float(loss_sum) + (carried or (0.0, 0))[0], count + (carried or (0.0, 0))[1]
        return EpochResult(total / max(done, 1), counter.step, stopped, skipped, total, int(done))

    def _forward_backward(self, batch, global_step: int, micro: int, last_micro: bool) -> torch.Tensor:
        """Loss of one micro-batch, back-propagated; gradients are synchronised on the last one."""
        seed = derive_seed(self.recipe.train.seed, global_step, micro, self.context.rank)
        with seeded(seed, self.device):  # drop path and dropout, replayed exactly on resume
            if batch.inputs.shape[0] == 0:  # every sample skipped: keep collectives aligned with a zero loss
                loss = torch.stack([p.sum() for p in self.trained]).sum() * 0.0
            else:
                inputs = batch.inputs.to(self.device, non_blocking=True)
                labels = batch.labels.to(self.device, non_blocking=True)
                masks = None if batch.masks is None else batch.masks.to(self.device, non_blocking=True)
                inputs, targets = self.mixer(inputs, labels, np.random.default_rng(seed))
                model: Any = self.model  # DistributedDataParallel under torchrun
                sync = nullcontext() if last_micro or not self.context.enabled else model.no_sync()
                with sync, autocast(self.device, self.recipe.train.precision):
                    loss = self.objective(self.model(inputs), targets, labels, masks)
            self.scaler.scale(loss / self.recipe.train.accum_steps).backward()
        return loss.detach()

    def _schedule_keep_rate(self, counter: StepCounter) -> None:
        """Set the keep rate of the next step by EViT's schedule (a no-op without one)."""
        start, shrink = self.shrink
        if start == 0 and shrink == 0:
            return
        base = self.recipe.model.resolved().keep_rate or 1.0
        epoch = counter.global_step // self.steps_per_epoch
        self.sparse.set_keep_rate(evit_keep_rate(counter.global_step, epoch, start, start + shrink, self.steps_per_epoch, base))

    def _optimizer_step(self, global_step: int) -> float:
        lr = learning_rate(global_step, self.total_steps, self.warmup_steps, self.peak_lr, self.recipe.optim.min_lr)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        if self.recipe.optim.clip_grad is not None:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.trained, self.recipe.optim.clip_grad)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        return lr

    def _should_stop(self, stop: StopRequest, counter: StepCounter) -> bool:
        """Stop mid-epoch? The end of an epoch is left to ``stop_agreed``, after validation."""
        if counter.step == self.steps_per_epoch or (self.context.enabled and counter.step % STOP_CHECK_EVERY):
            return False
        return self.stop_agreed(stop)

    def stop_agreed(self, stop: StopRequest) -> bool:
        """Whether any process was asked to stop (every process calls this at the same point)."""
        if not self.context.enabled:
            return stop.requested
        flag = torch.tensor([float(stop.requested)], device=self.device)
        return bool(self.context.all_reduce(flag, op="max").item())

    def _raise_if_non_finite(self, flag: torch.Tensor, counter: StepCounter, collective: bool) -> None:
        flag = flag.float().reshape(1)
        if bool((self.context.all_reduce(flag, op="max") if collective else flag).item()):
            raise NonFiniteLoss(
                f"the loss became NaN or infinite in epoch {counter.epoch + 1} (by step {counter.step}); stopped "
                f"without writing a checkpoint, the last good one is kept; lower optim.lr, set optim.clip_grad, "
                f"or use train.precision=bf16 instead of fp16"
            )
