"""Processes launched by torchrun: rank, world size, device, and the few collectives the engine needs."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from sttool.errors import SttoolError


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


def resolve_device(choice: str, context: DistContext) -> torch.device:
    """``auto`` picks CUDA when available; each process takes the GPU of its local rank."""
    if choice == "auto":
        choice = "cuda" if torch.cuda.is_available() else "cpu"
    if choice == "cuda":
        if not torch.cuda.is_available():
            raise SttoolError("train.device: cuda was asked for but no CUDA GPU is available; use train.device=cpu")
        torch.cuda.set_device(context.local_rank)
        return torch.device("cuda", context.local_rank)
    return torch.device("cpu")


def shutdown(context: DistContext) -> None:
    if context.enabled and dist.is_initialized():
        dist.destroy_process_group()
