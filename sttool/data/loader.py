"""What every sttool dataset shares (its samples in order, classes, and the bad-sample policy), batches
that survive bad samples, and DataLoaders that are reproducible for a seed."""

from __future__ import annotations

import random
from typing import Literal, NamedTuple

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from sttool.data.samples import ListEntry, SkippedSample, bad_sample


class Batch(NamedTuple):
    """Stacked good samples, their labels, the samples skipped in this batch (to count and report), and
    the foreground masks when the dataset gives them."""

    inputs: Tensor  # (B, 3, H, W), (B, 3, T, H, W) or (B, V, 3, T, H, W); B may be 0
    labels: Tensor  # (B,) int64
    skipped: list[SkippedSample]
    masks: Tensor | None = None  # (B, H, W) bool


def collate(samples: list) -> Batch:
    """Stack ``(x, label[, mask])`` items and set SkippedSamples aside; an all-skipped batch has B = 0."""
    good = [s for s in samples if not isinstance(s, SkippedSample)]
    skipped = [s for s in samples if isinstance(s, SkippedSample)]
    if good:
        inputs = torch.stack([item[0] for item in good])
        labels = torch.tensor([item[1] for item in good], dtype=torch.long)
        masks = torch.stack([item[2] for item in good]) if len(good[0]) > 2 else None
        return Batch(inputs, labels, skipped, masks)
    shape = next((s.shape for s in skipped if s.shape is not None), ())
    return Batch(torch.empty((0, *shape)), torch.empty(0, dtype=torch.long), skipped)


def seed_worker(worker_id: int) -> None:
    """Seed numpy and ``random`` in a worker from the seed torch gave it (loader seed + worker id)."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def build_loader(
    dataset: Dataset,
    batch_size: int,
    shuffle: bool,
    num_workers: int,
    seed: int,
    drop_last: bool = False,
    sampler: Sampler | None = None,
    pin_memory: bool | None = None,
) -> DataLoader:
    """A DataLoader over ``dataset`` that batches with ``collate``.

    Order and augmentation are reproducible for the same ``seed`` and ``num_workers``: the shuffle
    and every worker's torch seed come from one generator seeded with ``seed``. Workers persist across
    epochs. ``pin_memory`` defaults to whether CUDA is available.
    """
    workers = max(0, num_workers)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle if sampler is None else False,
        sampler=sampler,
        num_workers=workers,
        collate_fn=collate,
        pin_memory=torch.cuda.is_available() if pin_memory is None else pin_memory,
        drop_last=drop_last,
        worker_init_fn=seed_worker,
        generator=torch.Generator().manual_seed(seed),
        persistent_workers=workers > 0,
    )


class LabelledDataset(Dataset):
    """``samples`` = [(path, label)] in order; ``rejected`` = list lines left out under ``skip``
    (labels out of range), already counted when the dataset was built."""

    def __init__(
        self,
        entries: list[ListEntry],
        num_classes: int,
        class_names: list[str],
        on_bad_sample: Literal["error", "skip"],
        shape: tuple[int, ...],
        rejected: list[SkippedSample] | None = None,
    ) -> None:
        self.entries = entries
        self.samples: list[tuple[str, int]] = [(entry.path, entry.label) for entry in entries]
        self.num_classes = num_classes
        self.class_names = class_names
        self.on_bad_sample = on_bad_sample
        self.shape = shape  # of one transformed sample, e.g. (3, H, W)
        self.rejected = rejected or []

    def __len__(self) -> int:
        return len(self.entries)

    def bad(self, index: int, reason: str) -> SkippedSample:
        """The SkippedSample for sample ``index`` (``skip``), or an SttoolError naming it (``error``)."""
        return bad_sample(self.entries[index], reason, self.on_bad_sample, self.shape)
