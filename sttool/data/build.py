"""``build_dataset``: the one call the engine makes per split."""

from __future__ import annotations

from torch.utils.data import Dataset

from sttool.data.config import DataConfig, InputSpec
from sttool.data.datasets import Split, carves_val, load_source, split_name, stratified_split
from sttool.data.image_dataset import ArrayImages, ImageFiles
from sttool.data.listfile import check_labels
from sttool.data.transforms import image_transform
from sttool.data.video_dataset import VideoFiles
from sttool.errors import SttoolError


def _source_split(config: DataConfig, split: Split) -> str:
    """The named split to read for ``split``; val carved from train reads train."""
    name = split_name(config, split)
    carve = carves_val(config)
    if config.val_from_train > 0 and not carve:
        raise SttoolError(
            f"data.val_from_train: {config.val_from_train}, but {config.dataset} has its own val split "
            f"'{split_name(config, 'val')}'; set data.val_from_train: 0, or data.val_split: none to carve one from train"
        )
    if split == "val" and carve:
        return split_name(config, "train") or "train"
    if name is None:
        fix = "set data.val_from_train (e.g. 0.1) to carve one from train" if split == "val" else f"set data.{split}_split"
        raise SttoolError(f"data: {config.dataset} has no {split} split in this configuration; {fix}")
    return name


def _check_spec(config: DataConfig, spec: InputSpec) -> None:
    if config.is_video and spec.num_frames is None:
        raise SttoolError(f"data.dataset: {config.dataset} gives video clips, but the model takes images (set model.num_frames)")
    if not config.is_video and spec.num_frames is not None:
        raise SttoolError(f"data.dataset: {config.dataset} gives images, but the model takes {spec.num_frames}-frame clips")
    if config.is_video and config.video_backend == "decord":
        try:
            from sttool.data.video.backends import load_decord

            load_decord()
        except ImportError:
            raise SttoolError("data.video_backend: decord is not installed (wheels exist for Linux x86_64 only); use auto or pyav") from None


def build_dataset(config: DataConfig, split: Split, spec: InputSpec, train: bool) -> Dataset:
    """The dataset of ``split`` (train, val or test) with the training augmentation if ``train``.

    Items are ``(x, label)``: x float (3, H, W) for images, (3, T, H, W) for clips, (V, 3, T, H, W)
    for multi-view evaluation; or a SkippedSample under ``on_bad_sample: skip``. Raises SttoolError
    for a missing root, split or list, naming the path and what was expected.
    """
    _check_spec(config, spec)
    source = load_source(config, _source_split(config, split))
    entries, rejected = check_labels(source.entries, source.num_classes, config.on_bad_sample, source.origin)
    if carves_val(config) and split in ("train", "val"):
        train_rows, val_rows = stratified_split([entry.label for entry in entries], config.val_from_train)
        entries = [entries[i] for i in (val_rows if split == "val" else train_rows)]
    common = dict(num_classes=source.num_classes, class_names=source.class_names, on_bad_sample=config.on_bad_sample, rejected=rejected)
    size = spec.img_size
    if config.is_video:
        assert spec.num_frames is not None
        views = 1 if train else config.test_clips * config.test_crops
        shape = (3, spec.num_frames, size, size) if views == 1 else (views, 3, spec.num_frames, size, size)
        return VideoFiles(entries, shape=shape, config=config, spec=spec, train=train, frame_counts=source.frame_counts, **common)
    transform = image_transform(spec, config.augment, train, config.flips())
    if source.images is not None:
        return ArrayImages(entries, shape=(3, size, size), images=source.images, transform=transform, **common)
    return ImageFiles(entries, shape=(3, size, size), transform=transform, masks=config.masks, timeout=config.decode_timeout, **common)
