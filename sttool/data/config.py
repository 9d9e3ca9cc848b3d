"""The recipe's ``data:`` section (which dataset, where, which splits, how samples are read and
augmented), the facts of each dataset, and ``InputSpec``: what the model expects of its input, filled
from timm so normalisation never gets hard-coded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from sttool.errors import SttoolError

DatasetName = Literal[
    "synthetic_images", "synthetic_videos", "imagefolder", "vtab", "cifar100", "svhn", "food101", "ssv2", "k400", "video_list"
]
NO_SPLIT = "none"  # a split name that switches a split off, e.g. ``val_split: none``


@dataclass(frozen=True)
class DatasetFacts:
    """What sttool knows of one dataset, in one place."""

    video: bool
    splits: tuple[str, str | None, str | None]  # default (train, val, test) split names; None: none by default
    layout: str  # what its root holds, for the error when it is missing ({root} is filled in)
    split_path: str | None = None  # where a named split lives under the root ({split}, {task}), if a path tells
    direction_sensitive: bool = False  # labels depend on left/right: no horizontal flips, TSN segment sampling
    torchvision_splits: tuple[str, ...] = ()  # a torchvision set: the splits torchvision offers


SYNTHETIC_LAYOUT = "create it with 'sttool prepare synthetic --out {root}'"
DATASETS: dict[str, DatasetFacts] = {
    "synthetic_images": DatasetFacts(False, ("train", "val", "test"), SYNTHETIC_LAYOUT, "images/{split}"),
    "synthetic_videos": DatasetFacts(True, ("train", "val", "test"), SYNTHETIC_LAYOUT, "videos/{split}.txt", True),
    "imagefolder": DatasetFacts(False, ("train", "val", "test"), "expected {root}/<split>/<class>/<image>", "{split}"),
    "vtab": DatasetFacts(False, ("train800", "val200", "test"),
                         "expected {root}/<task>/train800.txt, val200.txt, train800val200.txt, test.txt", "{task}/{split}.txt"),
    "cifar100": DatasetFacts(False, ("train", None, "test"), "expected {root}/cifar-100-python/",
                             torchvision_splits=("train", "test")),
    "svhn": DatasetFacts(False, ("train", None, "test"), "expected {root}/train_32x32.mat, test_32x32.mat",
                         torchvision_splits=("train", "test", "extra")),
    "food101": DatasetFacts(False, ("train", None, "test"), "expected {root}/food-101/images, food-101/meta",
                            torchvision_splits=("train", "test")),
    # the official validation sets are what papers report on SSv2 and K400
    "ssv2": DatasetFacts(True, ("train", None, "validation"), "expected the SSv2 JSON annotations and <id>.webm videos under it",
                         direction_sensitive=True),
    "k400": DatasetFacts(True, ("train", None, "val"), "expected the Kinetics-400 CSVs and clips under it"),
    "video_list": DatasetFacts(True, ("train", "val", "test"),
                               "expected {root}/<split>.txt with lines '<relative/path> <label>' (see 'sttool prepare videos')",
                               "{split}.txt"),
}


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
    task: str | None = None  # VTAB-1K task folder; synthetic_images: shapes, pretrain or formula (checked)
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
    video_backend: Literal["auto", "torchcodec", "decord", "pyav"] = "auto"  # auto: torchcodec, else decord, else PyAV
    decode_timeout: float = 10.0  # seconds per decode, in a separate process; 0: decode in-process, unbounded
    on_bad_sample: Literal["error", "skip"] = "error"
    download: bool = False
    num_workers: int = 2
    video_dir: str | None = None  # ssv2/k400: folder of the videos, relative to root (None: searched)
    masks: bool = False  # synthetic_images: also give each image's foreground mask (for token labels)
    repeat_frame: bool = False  # video: each clip shows one sampled frame T times (a control without motion)
    stream: int = 0  # synthetic_images: train on this many freshly rendered images per epoch, not the files

    @property
    def facts(self) -> DatasetFacts:
        return DATASETS[self.dataset]

    @property
    def is_video(self) -> bool:
        return self.facts.video

    @property
    def frame_sampling(self) -> Literal["segment", "dense"]:
        """TSN segments where whole-video motion decides the label, dense windows otherwise (VideoMAE's ``ssv2.py`` and DyT's ``video_datasets``)."""
        if self.sampling is not None:
            return self.sampling
        return "segment" if self.facts.direction_sensitive else "dense"

    def flips(self) -> bool:
        """Whether training flips horizontally: ``hflip`` if set, else in "paper" augmentation for
        datasets whose labels do not depend on left/right."""
        if self.hflip is not None:
            return self.hflip
        return self.augment == "paper" and not self.facts.direction_sensitive

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
            vtab_class_count(self.task, self.num_classes, where, self.root)
        elif self.dataset == "synthetic_images":
            from sttool.data.synthetic.tasks import IMAGE_TASKS

            if self.task is not None and self.task not in IMAGE_TASKS:
                raise SttoolError(f"{where}.task: synthetic_images has tasks {', '.join(IMAGE_TASKS)}, not '{self.task}'")
        elif self.task is not None:
            raise SttoolError(f"{where}.task: '{self.task}' is set, but only vtab and synthetic_images have tasks")
        if self.stream < 0:
            raise SttoolError(f"{where}.stream: {self.stream} must be 0 (train on the files) or a number of images per epoch")
        if self.stream and (self.dataset != "synthetic_images" or self.task is None):
            raise SttoolError(f"{where}.stream: only synthetic_images with a task (shapes, pretrain or formula) can be rendered on the fly")
        if self.masks and self.dataset != "synthetic_images":
            raise SttoolError(f"{where}.masks: only synthetic_images has foreground masks, not {self.dataset}")
        if not self.is_video:
            for name, default in (("sampling", None), ("test_clips", 1), ("test_crops", 1), ("repeat_frame", False)):
                if getattr(self, name) != default:
                    raise SttoolError(f"{where}.{name}: applies to video datasets, and {self.dataset} has images")
        if self.test_crops > 1 and self.augment == "resize":
            raise SttoolError(f"{where}.test_crops: {self.test_crops} crops need augment paper or none; resize keeps the whole frame")


INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "box", "hamming", "lanczos")


@dataclass(frozen=True)
class InputSpec:
    """Input size, normalisation, resize interpolation and eval crop of a backbone.

    ``num_frames`` is None for image models and the clip length for video models.
    """

    img_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bicubic"
    crop_pct: float = 0.875
    num_frames: int | None = None

    def __post_init__(self) -> None:
        if self.img_size < 1:
            raise SttoolError(f"input spec: img_size {self.img_size} must be a positive integer")
        if len(self.mean) != 3 or len(self.std) != 3:
            raise SttoolError(f"input spec: mean {self.mean} and std {self.std} need 3 values (RGB)")
        if any(s <= 0 for s in self.std):
            raise SttoolError(f"input spec: std {self.std} must be positive")
        if self.interpolation not in INTERPOLATIONS:
            raise SttoolError(f"input spec: interpolation '{self.interpolation}' is not one of {', '.join(INTERPOLATIONS)}")
        if not 0.0 < self.crop_pct <= 1.0:
            raise SttoolError(f"input spec: crop_pct {self.crop_pct} is outside (0, 1]")
        if self.num_frames is not None and self.num_frames < 1:
            raise SttoolError(f"input spec: num_frames {self.num_frames} must be a positive integer")

    @property
    def resize_size(self) -> int:
        """Short side before the eval centre crop, timm's ``floor(img_size / crop_pct)``."""
        return int(self.img_size / self.crop_pct)

    @classmethod
    def from_timm(cls, data_config: Mapping[str, Any], num_frames: int | None = None) -> InputSpec:
        """From ``timm.data.resolve_model_data_config(model)``: input_size, mean, std, interpolation, crop_pct."""
        _, height, width = data_config["input_size"]
        if height != width:
            raise SttoolError(f"input spec: input_size {tuple(data_config['input_size'])} is not square; sttool crops square inputs")
        return cls(
            img_size=int(height),
            mean=_rgb(data_config["mean"], "mean"),
            std=_rgb(data_config["std"], "std"),
            interpolation=str(data_config.get("interpolation", "bicubic")),
            crop_pct=float(data_config.get("crop_pct", 0.875)),
            num_frames=num_frames,
        )


def _rgb(values: Any, name: str) -> tuple[float, float, float]:
    items = [float(v) for v in values]
    if len(items) != 3:
        raise SttoolError(f"input spec: {name} {tuple(items)} needs 3 values (RGB)")
    return items[0], items[1], items[2]
