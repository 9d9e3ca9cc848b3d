"""DataConfig binding and checks, per-dataset defaults, and InputSpec from timm's data config."""

import pytest
from timm.data import resolve_data_config
from timm.models import get_pretrained_cfg

from sttool.config.schema import bind
from sttool.data import DataConfig, InputSpec, has_split, split_name
from sttool.errors import SttoolError


def _bind(**data):
    return bind(DataConfig, data, "recipe.yaml: data")


def test_defaults_are_the_synthetic_quickstart():
    config = _bind()
    assert (config.dataset, config.root, config.augment, config.on_bad_sample) == ("synthetic_images", "data/synthetic", "paper", "error")
    assert (config.decode_timeout, config.num_workers, config.download) == (10.0, 2, False)


@pytest.mark.parametrize(
    "data,message",
    [
        ({"datset": "vtab"}, "unknown key 'datset'; did you mean 'dataset'"),
        ({"dataset": "kinetics"}, "dataset: 'kinetics' is not allowed"),
        ({"val_from_train": 1.0}, r"val_from_train: 1.0 is outside \[0, 1\)"),
        ({"dataset": "vtab"}, "task: vtab needs a task folder name"),
        ({"dataset": "cifar100", "task": "cifar"}, "only vtab and synthetic_images have tasks"),
        ({"task": "digits"}, "synthetic_images has tasks shapes, pretrain"),
        ({"test_clips": 2}, "test_clips: applies to video datasets"),
        ({"dataset": "k400", "test_crops": 3, "augment": "resize"}, "test_crops: 3 crops need augment paper or none"),
        ({"frame_stride": 0}, "frame_stride: 0 must be a positive integer"),
        ({"decode_timeout": -1}, "decode_timeout: -1.0 must be 0"),
        ({"train_split": "none"}, "training needs one"),
    ],
)
def test_bad_values_are_named(data, message):
    with pytest.raises(SttoolError, match=message):
        _bind(**data)


def test_yaml_strings_are_coerced():
    config = _bind(dataset="k400", val_from_train="1e-1", test_clips="5", hflip="false")
    assert (config.val_from_train, config.test_clips, config.hflip) == (0.1, 5, False)


def test_direction_sensitive_datasets_do_not_flip_and_use_segments():
    assert not _bind(dataset="ssv2").flips() and _bind(dataset="ssv2").frame_sampling == "segment"
    assert not _bind(dataset="synthetic_videos").flips() and _bind(dataset="synthetic_videos").frame_sampling == "segment"
    assert _bind(dataset="k400").flips() and _bind(dataset="k400").frame_sampling == "dense"
    assert not _bind(dataset="vtab", task="dtd", augment="resize").flips()
    assert _bind(dataset="ssv2", hflip=True).flips()


@pytest.mark.parametrize(
    "dataset,splits",
    [
        ("cifar100", ("train", None, "test")),
        ("food101", ("train", None, "test")),
        ("ssv2", ("train", None, "validation")),
        ("k400", ("train", None, "val")),
        ("synthetic_images", ("train", "val", "test")),
    ],
)
def test_default_split_names(dataset, splits, tmp_path):
    config = _bind(dataset=dataset, root=str(tmp_path / "absent"))  # never the working folder's data/
    assert tuple(split_name(config, s) for s in ("train", "val", "test")) == splits
    assert has_split(config, "val") == (splits[1] is not None and dataset != "synthetic_images")


def test_val_split_none_switches_val_off_and_val_from_train_brings_it_back():
    config = _bind(dataset="imagefolder", val_split="none")
    assert split_name(config, "val") is None and not has_split(config, "val")
    assert has_split(_bind(dataset="cifar100", val_from_train=0.1), "val")


def test_input_spec_from_timm():
    # The paper's checkpoint: 224 px, bicubic, crop 0.9, mean = std = 0.5 (timm's ``vit_base_patch16_224.orig_in21k`` pretrained config)
    timm_config = resolve_data_config(pretrained_cfg=get_pretrained_cfg("vit_base_patch16_224.orig_in21k").to_dict())
    spec = InputSpec.from_timm(timm_config, num_frames=8)
    assert spec == InputSpec(224, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), "bicubic", 0.9, 8)
    assert spec.resize_size == 248  # floor(224 / 0.9), as timm's eval transform
    at_384 = InputSpec.from_timm(resolve_data_config(pretrained_cfg=get_pretrained_cfg("vit_base_patch16_384.augreg_in21k_ft_in1k").to_dict()))
    assert (at_384.img_size, at_384.crop_pct, at_384.num_frames) == (384, 1.0, None)


def test_input_spec_rejects_bad_values():
    with pytest.raises(SttoolError, match="interpolation 'cubic'"):
        InputSpec(224, (0.5,) * 3, (0.5,) * 3, interpolation="cubic")
    with pytest.raises(SttoolError, match="not square"):
        InputSpec.from_timm({"input_size": (3, 224, 160), "mean": (0, 0, 0), "std": (1, 1, 1)})
