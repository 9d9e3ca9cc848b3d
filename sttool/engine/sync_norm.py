"""BatchNorm statistics over the global batch, on any device, for the official code's BN head.

torch's SyncBatchNorm runs on GPUs only; this one works with gloo on CPU too. Its statistics are the
sums of all processes (differentiably all-reduced), so N processes with B/N samples each normalise
exactly as one process with B samples: the result of a run does not depend on the process count.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor, nn


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
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                unbiased = var * n / (n - 1).clamp_min(1)
                self.running_mean.lerp_(mean, self.momentum)
                self.running_var.lerp_(unbiased, self.momentum)
        out = (x - mean) / torch.sqrt(var + self.eps)
        if self.affine:
            out = out * self.weight + self.bias
        return out


def synchronise_batch_norms(model: nn.Module) -> None:
    """Swap every BatchNorm1d of ``model`` to the global-batch version, in place (keys unchanged)."""
    for module in model.modules():
        if type(module) is nn.BatchNorm1d:
            module.__class__ = GlobalBatchNorm1d
