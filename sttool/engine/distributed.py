"""Processes launched by torchrun: rank, world size, the few collectives the engine needs, and BatchNorm
statistics over the global batch.

torch's SyncBatchNorm runs on GPUs only; ``synchronise_batch_norms`` works with gloo on CPU too. Its
statistics are the sums of all processes (differentiably all-reduced), so N processes with B/N samples
each normalise exactly as one process with B samples: the result of a run does not depend on the
process count.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn


@dataclass
class DistContext:
    """This process's place: rank 0 of 1 without torchrun."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def all_reduce(self, tensor: torch.Tensor, op: str = "sum") -> torch.Tensor:
        """Sum or max over processes, in place (a no-op for one process)."""
        if self.enabled:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM if op == "sum" else dist.ReduceOp.MAX)
        return tensor


def init_distributed(device: str) -> DistContext:
    """Join the process group torchrun set up (NCCL on CUDA, gloo on CPU), or run alone."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return DistContext()
    context = DistContext(int(os.environ["RANK"]), world_size, int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        backend = "nccl" if device == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
    return context


def shutdown(context: DistContext) -> None:
    if context.enabled and dist.is_initialized():
        dist.destroy_process_group()


class _AllReduceSum(torch.autograd.Function):
    """Sum over processes whose gradient is again the sum over processes (each loss sees every input)."""

    @staticmethod
    def forward(ctx, tensor: Tensor) -> Tensor:
        total = tensor.clone()
        dist.all_reduce(total)
        return total

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        total = grad.clone()
        dist.all_reduce(total)
        return total


class GlobalBatchNorm1d(nn.BatchNorm1d):
    """``nn.BatchNorm1d`` whose training statistics cover every process's batch."""

    def forward(self, x: Tensor) -> Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        local = torch.stack([x.sum(0), (x * x).sum(0)])  # (2, C)
        count = torch.tensor([float(x.shape[0])], device=x.device)
        totals = _AllReduceSum.apply(local)
        n = _AllReduceSum.apply(count)
        mean = totals[0] / n
        var = totals[1] / n - mean * mean  # biased, as BatchNorm normalises with
        if self.track_running_stats and self.running_mean is not None and self.running_var is not None:
            assert self.num_batches_tracked is not None
            momentum = 0.1 if self.momentum is None else self.momentum
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                unbiased = var * n / (n - 1).clamp_min(1)
                self.running_mean.lerp_(mean, momentum)
                self.running_var.lerp_(unbiased, momentum)
        out = (x - mean) / torch.sqrt(var + self.eps)
        if self.affine:
            out = out * self.weight + self.bias
        return out


def synchronise_batch_norms(model: nn.Module) -> None:
    """Swap every BatchNorm1d of ``model`` to the global-batch version, in place (keys unchanged)."""
    for module in model.modules():
        if type(module) is nn.BatchNorm1d:
            module.__class__ = GlobalBatchNorm1d
