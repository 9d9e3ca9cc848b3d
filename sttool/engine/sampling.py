"""Deterministic batches and the loaders of a run: a run is a function of (seed, epoch, step, sample
index), whatever the process count.

The global batch of optimiser step s in epoch e is a fixed slice of the epoch's permutation; it is
split into ``world_size x accum_steps`` micro-batches, so one process with the same global batch sees
the same samples. Each sample's augmentation is seeded by (seed, epoch, index), so a resumed run or a
run on more processes draws the same crops and flips.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from sttool.engine.distributed import DistContext
from sttool.errors import SttoolError
from sttool.runs.recipe import Recipe
from sttool.runtime import seeded


def derive_seed(*parts: int) -> int:
    """A 63-bit seed mixed from integers (NumPy's SeedSequence), stable across runs and platforms."""
    return int(np.random.SeedSequence([p & 0xFFFFFFFF for p in parts]).generate_state(2, np.uint64)[0] >> 1)


@dataclass
class BatchPlan:
    """Which samples each process sees at each micro-step of each epoch."""

    num_samples: int
    batch_size: int  # global, per optimiser step
    accum_steps: int = 1
    world_size: int = 1
    rank: int = 0
    seed: int = 0
    shuffle: bool = True

    @property
    def micro_batch_size(self) -> int:
        return self.batch_size // (self.accum_steps * self.world_size)

    @property
    def steps_per_epoch(self) -> int:
        """Optimiser steps per epoch; an incomplete last global batch is dropped."""
        return self.num_samples // self.batch_size

    def order(self, epoch: int) -> list[int]:
        if not self.shuffle:
            return list(range(self.num_samples))
        generator = torch.Generator().manual_seed(derive_seed(self.seed, epoch))
        return torch.randperm(self.num_samples, generator=generator).tolist()

    def micro_batches(self, epoch: int, first_step: int = 0) -> Iterator[list[tuple[int, int]]]:
        """This process's micro-batches, as (epoch, sample index) pairs, from optimiser step ``first_step``."""
        order = self.order(epoch)
        micro = self.micro_batch_size
        for step in range(first_step, self.steps_per_epoch):
            batch = order[step * self.batch_size:(step + 1) * self.batch_size]
            for accum in range(self.accum_steps):
                start = (accum * self.world_size + self.rank) * micro
                yield [(epoch, index) for index in batch[start:start + micro]]


class EpochBatchSampler:
    """A DataLoader ``batch_sampler`` over a ``BatchPlan``; ``set_epoch`` before each epoch."""

    def __init__(self, plan: BatchPlan, max_steps: int | None = None) -> None:
        self.plan = plan
        self.max_steps = max_steps
        self.epoch = 0
        self.first_step = 0

    def steps(self) -> int:
        steps = self.plan.steps_per_epoch
        return steps if self.max_steps is None else min(steps, self.max_steps)

    def set_epoch(self, epoch: int, first_step: int = 0) -> None:
        self.epoch, self.first_step = epoch, first_step

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        batches = self.plan.micro_batches(self.epoch, self.first_step)
        for _ in range((self.steps() - self.first_step) * self.plan.accum_steps):
            yield next(batches)

    def __len__(self) -> int:
        return max(0, self.steps() - self.first_step) * self.plan.accum_steps


EVAL_EPOCH = -1  # the "epoch" of evaluation reads: any randomness in them is fixed per sample


class SeededDataset(Dataset):
    """Seeds torch, NumPy and ``random`` from (seed, epoch, index) while reading a sample (and restores them).

    Items are (epoch, index) pairs from a ``BatchPlan``, or plain indices for evaluation.
    """

    def __init__(self, dataset: Any, seed: int) -> None:
        self.dataset = dataset
        self.seed = seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, item: int | tuple[int, int]):
        epoch, index = item if isinstance(item, tuple) else (EVAL_EPOCH, item)
        with seeded(derive_seed(self.seed, epoch, index)):
            return self.dataset[index]


def train_loader(dataset: Any, recipe: Recipe, context: DistContext, spec: Any = None,
                 device: torch.device | None = None) -> tuple[Any, Any]:
    """Deterministic micro-batches of this process (see ``sampling``) with seeded augmentation; for a
    streamed task, batches rendered on ``device`` (the loader is then its own sampler)."""
    from sttool.data import collate
    from sttool.data.synthetic.stream import StreamedTask, SyntheticStream

    train = recipe.train
    if train.batch_size % (train.accum_steps * context.world_size):
        raise SttoolError(
            f"train.batch_size {train.batch_size} is not divisible by accum_steps x processes "
            f"({train.accum_steps} x {context.world_size})"
        )
    if isinstance(dataset, StreamedTask):
        if len(dataset) < train.batch_size:
            raise SttoolError(f"data.stream: {len(dataset)} images per epoch is fewer than train.batch_size {train.batch_size}")
        stream = SyntheticStream(dataset, train.batch_size, train.accum_steps, context.world_size, context.rank, train.seed,
                                 spec, recipe.data.flips(), recipe.data.masks, device or torch.device("cpu"), train.max_steps_per_epoch)
        return stream, stream
    plan = BatchPlan(len(dataset), train.batch_size, train.accum_steps, context.world_size, context.rank, train.seed)
    if plan.steps_per_epoch == 0:
        raise SttoolError(f"train.batch_size {train.batch_size} is larger than the training set ({len(dataset)} samples)")
    sampler = EpochBatchSampler(plan, train.max_steps_per_epoch)
    workers = recipe.data.num_workers
    loader = DataLoader(
        SeededDataset(dataset, train.seed), batch_sampler=sampler, collate_fn=collate, num_workers=workers,
        persistent_workers=workers > 0, pin_memory=torch.cuda.is_available(),
    )
    return loader, sampler


def eval_loader(dataset: Any, recipe: Recipe, context: DistContext) -> DataLoader:
    """This process's shard of an evaluation split, in order."""
    from sttool.data import collate

    seeded = SeededDataset(dataset, recipe.train.seed)
    shard = Subset(seeded, range(context.rank, len(dataset), context.world_size)) if context.enabled else seeded
    return DataLoader(
        shard, batch_size=recipe.train.eval_batch_size or recipe.train.batch_size, shuffle=False, collate_fn=collate,
        num_workers=recipe.data.num_workers, pin_memory=torch.cuda.is_available(),
    )
