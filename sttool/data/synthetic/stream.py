"""An endless training set: batches of a synthetic task rendered afresh on the training device.

Pre-training the micro backbone sees every image once, so it cannot memorise its data, and no files
are read: ``data.stream: N`` makes an "epoch" N new images. Batches are a function of (seed, epoch,
step, micro-batch, rank), so a resumed run draws the same images, and one process with the same
global batch draws what several would. Rendering runs where training runs: on a GPU a batch of
hundreds takes milliseconds, on a CPU about 1.5 ms per 64-pixel image and thread.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from sttool.data.config import InputSpec
from sttool.data.loader import Batch
from sttool.data.synthetic.tasks import IMAGE_TASKS


@dataclass(frozen=True)
class StreamedTask:
    """What a streamed training split is, before a device is chosen: the task, its size and classes."""

    task: str
    images_per_epoch: int

    @property
    def class_names(self) -> list[str]:
        """Sorted, as the files' class folders are read: label k is the same shape in the stream and on disk."""
        return IMAGE_TASKS[self.task].sorted_names

    @property
    def num_classes(self) -> int:
        return len(IMAGE_TASKS[self.task].names)

    def __len__(self) -> int:
        return self.images_per_epoch


def _seed(*parts: int) -> int:
    return int(np.random.SeedSequence([p & 0xFFFFFFFF for p in parts]).generate_state(1, np.uint64)[0] >> 1)


class SyntheticStream:
    """Micro-batches of freshly rendered images for one process; the loader and sampler of a run.

    ``set_epoch(epoch, first_step)`` positions it, ``steps()`` is the optimiser steps per epoch; each
    batch is normalised with the model's ``spec``, flipped at random if ``flips``, with masks if asked.
    """

    def __init__(self, task: StreamedTask, batch_size: int, accum_steps: int, world_size: int, rank: int, seed: int,
                 spec: InputSpec, flips: bool, masks: bool, device: torch.device, max_steps: int | None = None) -> None:
        row = IMAGE_TASKS[task.task]
        self.render = row.render
        self.generation_index = torch.tensor([row.names.index(name) for name in task.class_names], device=device)  # sorted label -> row label
        self.micro = batch_size // (accum_steps * world_size)
        self.accum_steps, self.rank, self.seed = accum_steps, rank, seed
        self.spec, self.flips, self.masks, self.device = spec, flips, masks, device
        self.steps_per_epoch = task.images_per_epoch // batch_size
        self.max_steps = max_steps
        self.epoch = self.first_step = 0
        self.mean = torch.tensor(spec.mean, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(spec.std, device=device).view(1, 3, 1, 1)

    def steps(self) -> int:
        return self.steps_per_epoch if self.max_steps is None else min(self.steps_per_epoch, self.max_steps)

    def set_epoch(self, epoch: int, first_step: int = 0) -> None:
        self.epoch, self.first_step = epoch, first_step

    def __len__(self) -> int:
        return max(0, self.steps() - self.first_step) * self.accum_steps

    def batch(self, epoch: int, step: int, accum: int) -> Batch:
        """The micro-batch ``accum`` of optimiser step ``step`` in ``epoch`` for this process."""
        generator = torch.Generator(device=self.device).manual_seed(_seed(self.seed, epoch, step, accum, self.rank))
        labels = torch.randint(0, len(self.generation_index), (self.micro,), generator=generator, device=self.device)
        images, masks = self.render(self.generation_index[labels], self.spec.img_size, generator)  # (B, 3, S, S), (B, S, S)
        if self.flips:
            flip = torch.rand(self.micro, generator=generator, device=self.device) < 0.5
            images = torch.where(flip[:, None, None, None], images.flip(3), images)
            masks = torch.where(flip[:, None, None], masks.flip(2), masks)
        inputs = (images.float() / 255 - self.mean) / self.std
        return Batch(inputs, labels, [], masks if self.masks else None)

    def __iter__(self) -> Iterator[Batch]:
        for step in range(self.first_step, self.steps()):
            for accum in range(self.accum_steps):
                yield self.batch(self.epoch, step, accum)
