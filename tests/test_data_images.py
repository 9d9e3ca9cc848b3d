"""Image reading and ImageFolder / list datasets: modes, bad files in error and skip modes, transforms."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sttool.config.schema import bind
from sttool.data import DataConfig, SkippedSample, build_dataset
from sttool.data.image_dataset import load_rgb
from sttool.data.samples import BadSample
from sttool.errors import SttoolError
from tests.data_helpers import save_image, spec


@pytest.mark.parametrize("mode", ["RGB", "L", "LA", "RGBA", "CMYK", "P"])
def test_every_mode_becomes_rgb_with_the_same_pixels(tmp_path, mode):
    suffix = ".jpg" if mode == "CMYK" else ".png"
    path = save_image(tmp_path / f"img{suffix}", value=100, mode=mode)
    image = load_rgb(str(path))
    assert image.mode == "RGB" and image.size == (16, 16)
    assert np.abs(np.asarray(image, dtype=int) - 100).max() <= 3  # JPEG (CMYK) rounds a little


def test_palette_transparency_and_cmyk_colours(tmp_path):
    palette = Image.new("P", (4, 4), 1)
    palette.putpalette([0, 0, 0, 200, 30, 10] + [0] * 762)
    palette.info["transparency"] = 0
    palette.save(tmp_path / "p.png", transparency=0)
    assert np.asarray(load_rgb(str(tmp_path / "p.png")))[0, 0].tolist() == [200, 30, 10]
    Image.new("CMYK", (4, 4), (0, 255, 255, 0)).save(tmp_path / "red.tif")  # cyan 0, magenta and yellow full: red
    assert np.asarray(load_rgb(str(tmp_path / "red.tif")))[0, 0].tolist() == [255, 0, 0]


def test_bad_files_raise_bad_sample_with_a_reason(tmp_path):
    good = save_image(tmp_path / "good.jpg")
    (tmp_path / "cut.jpg").write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    png = save_image(tmp_path / "good.png", size=64)
    (tmp_path / "cut.png").write_bytes(png.read_bytes()[:-30])
    (tmp_path / "junk.png").write_bytes(os.urandom(500))
    for name, reason in [("cut.jpg", "cannot decode"), ("cut.png", "cannot decode"), ("junk.png", "not an image"), ("none.png", "not found")]:
        with pytest.raises(BadSample, match=reason):
            load_rgb(str(tmp_path / name))


@pytest.fixture
def folder(tmp_path):
    """train/{cat,dog}/ with 3 images each, val/ with one per class, and one corrupt train image."""
    for split, count in (("train", 3), ("val", 1)):
        for label, name in enumerate(("cat", "dog")):
            for i in range(count):
                save_image(tmp_path / split / name / f"{i}.png", value=60 + 100 * label)
    (tmp_path / "train" / "dog" / "3.png").write_bytes(b"not a png")
    return tmp_path


def _config(root, **options):
    return bind(DataConfig, {"dataset": "imagefolder", "root": str(root), **options}, "test")


def test_image_folder_labels_follow_sorted_class_folders(folder):
    dataset = build_dataset(_config(folder, augment="none"), "val", spec(8), train=False)
    assert dataset.class_names == ["cat", "dog"] and dataset.num_classes == 2
    assert [label for _, label in dataset.samples] == [0, 1]
    x, label = dataset[1]
    assert x.shape == (3, 8, 8) and label == 1
    assert torch.allclose(x, torch.full_like(x, 160 / 255 * 2 - 1), atol=1e-5)  # flat 160, mean = std = 0.5


def test_a_corrupt_image_is_an_error_naming_it_or_a_skip(folder):
    train = build_dataset(_config(folder), "train", spec(8), train=True)
    bad = [i for i, (path, _) in enumerate(train.samples) if path.endswith("3.png")][0]
    with pytest.raises(SttoolError, match=r"dog/3\.png: not an image"):
        train[bad]
    skipping = build_dataset(_config(folder, on_bad_sample="skip"), "train", spec(8), train=True)
    skipped = skipping[bad]
    assert isinstance(skipped, SkippedSample) and skipped.path.endswith("3.png") and skipped.shape == (3, 8, 8)


def test_val_class_not_in_train_is_an_error(folder):
    save_image(folder / "val" / "eel" / "0.png")
    with pytest.raises(SttoolError, match="class 'eel' is not among the training classes"):
        build_dataset(_config(folder), "val", spec(8), train=False)


def test_missing_split_and_root_name_the_path(folder, tmp_path):
    with pytest.raises(SttoolError, match="has no test split|image folder .*test not found"):
        build_dataset(_config(folder, test_split="test"), "test", spec(8), train=False)
    with pytest.raises(SttoolError, match=r"data.root: .*nowhere does not exist"):
        build_dataset(_config(tmp_path / "nowhere"), "train", spec(8), train=True)


def test_resize_is_a_plain_resize_in_training_and_evaluation(tmp_path):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    (tmp_path / "train" / "a").mkdir(parents=True)
    Image.fromarray(pixels).save(tmp_path / "train" / "a" / "0.png")
    expected = np.asarray(Image.fromarray(pixels).resize((8, 8), Image.BILINEAR), dtype=np.float32) / 255
    expected = torch.from_numpy((expected - 0.5) / 0.5).permute(2, 0, 1)
    for train in (True, False):
        x, _ = build_dataset(_config(tmp_path, augment="resize"), "train", spec(8), train=train)[0]
        assert torch.allclose(x, expected, atol=1e-5)


def test_eval_resizes_the_short_side_then_centre_crops(tmp_path):
    # 40 x 20 image, crop_pct 0.5, img_size 8: short side to 16 -> 32 x 16, centre 8 x 8 at (12, 4)
    pixels = np.random.default_rng(1).integers(0, 256, (20, 40, 3), dtype=np.uint8)
    (tmp_path / "train" / "a").mkdir(parents=True)
    Image.fromarray(pixels).save(tmp_path / "train" / "a" / "0.png")
    resized = np.asarray(Image.fromarray(pixels).resize((32, 16), Image.BILINEAR), dtype=np.float32)[4:12, 12:20] / 255
    x, _ = build_dataset(_config(tmp_path, augment="none"), "train", spec(8, crop_pct=0.5), train=True)[0]
    assert torch.allclose(x, torch.from_numpy((resized - 0.5) / 0.5).permute(2, 0, 1), atol=1e-5)


def test_paper_augmentation_is_random_but_seeded(tmp_path):
    (tmp_path / "train" / "a").mkdir(parents=True)
    Image.fromarray(np.random.default_rng(2).integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(tmp_path / "train" / "a" / "0.png")
    dataset = build_dataset(_config(tmp_path), "train", spec(8), train=True)
    torch.manual_seed(0)
    first = [dataset[0][0] for _ in range(3)]
    torch.manual_seed(0)
    again = [dataset[0][0] for _ in range(3)]
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not torch.equal(first[0], first[1])


@pytest.mark.parametrize("dataset", ["cifar100", "svhn", "food101"])
def test_torchvision_sets_need_a_local_copy_or_download(tmp_path, dataset):
    config = bind(DataConfig, {"dataset": dataset, "root": str(tmp_path / "absent")}, "test")
    with pytest.raises(SttoolError, match=rf"{dataset} not found or incomplete under .*absent \(expected .*\); set data.download=true"):
        build_dataset(config, "train", spec(8), train=True)
    assert not (tmp_path / "absent").exists() or not any((tmp_path / "absent").iterdir())  # nothing downloaded


def test_food101_from_a_local_tree_with_the_usual_bad_sample_handling(tmp_path):
    meta = tmp_path / "food-101" / "meta"
    meta.mkdir(parents=True)
    (meta / "train.json").write_text(json.dumps({"bibimbap": ["bibimbap/3"], "apple_pie": ["apple_pie/1", "apple_pie/2"]}))
    save_image(tmp_path / "food-101" / "images" / "apple_pie" / "1.jpg")
    save_image(tmp_path / "food-101" / "images" / "bibimbap" / "3.jpg")
    config = bind(DataConfig, {"dataset": "food101", "root": str(tmp_path), "val_from_train": 0.5, "on_bad_sample": "skip"}, "test")
    train = build_dataset(config, "train", spec(8), train=True)
    assert train.class_names == ["apple_pie", "bibimbap"]
    assert sorted(label for _, label in train.samples) == [0, 1]  # one apple pie went to val
    val = build_dataset(config, "val", spec(8), train=False)
    assert len(val) == 1 and Path(val.samples[0][0]).parent.name == "apple_pie"
    reads = [train[i] for i in range(len(train))] + [val[0]]
    assert sum(isinstance(item, SkippedSample) for item in reads) == 1  # 2.jpg is listed but absent
