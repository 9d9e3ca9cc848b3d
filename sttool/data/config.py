"""The recipe's ``data:`` section: which dataset, where, which splits, how samples are read and augmented."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sttool.errors import SttoolError

DatasetName = Literal[
    "synthetic_images", "synthetic_videos", "imagefolder", "vtab", "cifar100", "svhn", "food101", "ssv2", "k400", "video_list"
]
VIDEO_DATASETS = ("synthetic_videos", "ssv2", "k400", "video_list")
SYNTHETIC_TASKS = ("shapes", "pretrain")
# Datasets whose labels depend on the direction of motion: a horizontal flip would change the class.
DIRECTION_SENSITIVE = ("ssv2", "synthetic_videos")
NO_SPLIT = "none"  # a split name that switches a split off, e.g. ``val_split: none``


@dataclass
class DataConfig:
    """Dataset, splits, augmentation and decoding. ``None`` means "the dataset's default".

    Default splits: VTAB-1K trains on train800, validates on val200 (no val split when training on
    train800val200) and tests on test; synthetic sets, imagefolder and video_list use train/val/test;
    CIFAR-100, SVHN and Food-101 have no val split (use ``val_from_train``); SSv2 and K400 have no
    val split and test on their official validation set (``validation`` and ``val``).
    """

    dataset: DatasetName = "synthetic_images"
    root: str = "data/synthetic"
    task: str | None = None  # VTAB-1K task folder; synthetic_images: shapes or pretrain (checked)
    num_classes: int | None = None  # None: from the data; else checked against it
    train_split: str | None = None
    val_split: str | None = None  # "none": no val split
    test_split: str | None = None
    val_from_train: float = 0.0  # > 0: a class-stratified share of train becomes val
    augment: Literal["paper", "resize", "none"] = "paper"
    hflip: bool | None = None  # None: flip in "paper" training unless labels depend on direction
    sampling: Literal["segment", "dense"] | None = None  # None: segment for ssv2/synthetic_videos, else dense
    frame_stride: int = 4
    test_clips: int = 1
    test_crops: int = 1
    video_backend: Literal["auto", "decord", "pyav"] = "auto"
    decode_timeout: float = 10.0  # seconds per decode, in a separate process; 0: decode in-process, unbounded
    on_bad_sample: Literal["error", "skip"] = "error"
    download: bool = False
    num_workers: int = 2
    video_dir: str | None = None  # ssv2/k400: folder of the videos, relative to root (None: searched)
    masks: bool = False  # synthetic_images: also give each image's foreground mask (for token labels)
    stream: int = 0  # synthetic_images: train on this many freshly rendered images per epoch, not the files

    @property
    def is_video(self) -> bool:
        return self.dataset in VIDEO_DATASETS

    @property
    def frame_sampling(self) -> Literal["segment", "dense"]:
        """TSN segments where whole-video motion decides the label, dense windows otherwise (ECOSYSTEM 2.2)."""
        if self.sampling is not None:
            return self.sampling
        return "segment" if self.dataset in DIRECTION_SENSITIVE else "dense"

    def flips(self) -> bool:
        """Whether training flips horizontally: ``hflip`` if set, else in "paper" augmentation for
        datasets whose labels do not depend on left/right."""
        if self.hflip is not None:
            return self.hflip
        return self.augment == "paper" and self.dataset not in DIRECTION_SENSITIVE

    def check(self, where: str = "data") -> None:
        """Validate values and combinations that need no files; raises SttoolError naming the key."""
        from sttool.data.vtab import vtab_class_count

        for name in ("frame_stride", "test_clips", "test_crops"):
            if getattr(self, name) < 1:
                raise SttoolError(f"{where}.{name}: {getattr(self, name)} must be a positive integer")
        if self.num_classes is not None and self.num_classes < 1:
            raise SttoolError(f"{where}.num_classes: {self.num_classes} must be a positive integer")
        if self.num_workers < 0:
            raise SttoolError(f"{where}.num_workers: {self.num_workers} must be 0 or more")
        if self.decode_timeout < 0:
            raise SttoolError(f"{where}.decode_timeout: {self.decode_timeout} must be 0 (no bound) or more seconds")
        if not 0.0 <= self.val_from_train < 1.0:
            raise SttoolError(f"{where}.val_from_train: {self.val_from_train} is outside [0, 1)")
        if self.train_split == NO_SPLIT:
            raise SttoolError(f"{where}.train_split: '{NO_SPLIT}' switches a split off; training needs one")
        if self.dataset == "vtab":
            if self.task is None:
                raise SttoolError(f"{where}.task: vtab needs a task folder name, e.g. cifar, caltech101, dtd, eurosat")
            vtab_class_count(self.task, self.num_classes, where)
        elif self.dataset == "synthetic_images":
            if self.task is not None and self.task not in SYNTHETIC_TASKS:
                raise SttoolError(f"{where}.task: synthetic_images has tasks {', '.join(SYNTHETIC_TASKS)}, not '{self.task}'")
        elif self.task is not None:
            raise SttoolError(f"{where}.task: '{self.task}' is set, but only vtab and synthetic_images have tasks")
        if self.stream < 0:
            raise SttoolError(f"{where}.stream: {self.stream} must be 0 (train on the files) or a number of images per epoch")
        if self.stream and (self.dataset != "synthetic_images" or self.task is None):
            raise SttoolError(f"{where}.stream: only synthetic_images with a task (shapes or pretrain) can be rendered on the fly")
        if self.masks and self.dataset != "synthetic_images":
            raise SttoolError(f"{where}.masks: only synthetic_images has foreground masks, not {self.dataset}")
        if not self.is_video:
            for name, default in (("sampling", None), ("test_clips", 1), ("test_crops", 1)):
                if getattr(self, name) != default:
                    raise SttoolError(f"{where}.{name}: applies to video datasets, and {self.dataset} has images")
        if self.test_crops > 1 and self.augment == "resize":
            raise SttoolError(f"{where}.test_crops: {self.test_crops} crops need augment paper or none; resize keeps the whole frame")
