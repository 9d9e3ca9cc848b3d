"""What every sttool dataset shares: its samples in order, classes, and the bad-sample policy."""

from __future__ import annotations

from typing import Literal

from torch.utils.data import Dataset

from sttool.data.samples import ListEntry, SkippedSample, bad_sample


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
