"""collate and build_loader: labelled batches of images and clips, skipped samples, seeds, carved val."""

from collections import Counter

import numpy as np
import pytest
import torch

from sttool.config.schema import bind
from sttool.data import Batch, DataConfig, SkippedSample, build_dataset, build_loader, collate
from sttool.data.datasets import stratified_split
from sttool.data.synthetic import SyntheticOptions, make_synthetic
from sttool.data.synthetic.videos import DIRECTIONS
from tests.data_helpers import spec


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    make_synthetic(SyntheticOptions(out=str(root), image_size=32, images_per_class=(4, 2, 1), video_size=32, num_frames=8, videos_per_class=(2, 1, 1)))
    return root


def _config(root, **options):
    return bind(DataConfig, {"root": str(root), **options}, "test")


def test_collate_sets_skipped_samples_aside():
    good = [(torch.full((3, 2, 2), float(i)), i) for i in range(3)]
    skipped = SkippedSample("a.png", 4, "file not found", "list.txt", (3, 2, 2))
    batch = collate([good[0], skipped, good[2]])
    assert isinstance(batch, Batch) and batch.inputs.shape == (2, 3, 2, 2)
    assert batch.labels.tolist() == [0, 2] and batch.labels.dtype == torch.long and batch.skipped == [skipped]
    empty = collate([skipped, skipped])
    assert empty.inputs.shape == (0, 3, 2, 2) and empty.labels.shape == (0,) and len(empty.skipped) == 2


def test_image_batches_carry_the_folder_labels(synthetic):
    dataset = build_dataset(_config(synthetic), "train", spec(32), train=True)
    loader = build_loader(dataset, batch_size=16, shuffle=False, num_workers=0, seed=0)
    labels = torch.cat([batch.labels for batch in loader])
    expected = [dataset.class_names.index(path.split("/")[-2]) for path, _ in dataset.samples]
    assert labels.tolist() == expected and len(labels) == 40
    first = next(iter(loader))
    assert first.inputs.shape == (16, 3, 32, 32) and first.inputs.dtype == torch.float32


def test_clip_batches_and_multi_view_evaluation(synthetic):
    config = _config(synthetic, dataset="synthetic_videos")
    train = build_dataset(config, "train", spec(32, num_frames=4), train=True)
    batch = next(iter(build_loader(train, batch_size=4, shuffle=False, num_workers=1, seed=0)))
    assert batch.inputs.shape == (4, 3, 4, 32, 32) and batch.labels.tolist() == [0, 0, 1, 1]
    assert train.class_names == list(DIRECTIONS)
    views = _config(synthetic, dataset="synthetic_videos", test_clips=2, test_crops=3)
    test = build_dataset(views, "test", spec(16, num_frames=4), train=False)
    batch = next(iter(build_loader(test, batch_size=3, shuffle=False, num_workers=0, seed=0)))
    assert batch.inputs.shape == (3, 6, 3, 4, 16, 16) and batch.labels.tolist() == [0, 1, 2]


@pytest.mark.parametrize("workers", [0, 2])
def test_the_same_seed_gives_the_same_batches(synthetic, workers):
    dataset = build_dataset(_config(synthetic), "train", spec(16), train=True)

    def epoch(seed):
        torch.manual_seed(seed)  # with no workers, augmentation draws from the process's generator
        loader = build_loader(dataset, batch_size=8, shuffle=True, num_workers=workers, seed=seed)
        return [(batch.inputs.clone(), batch.labels.clone()) for batch in loader]

    first, again, other = epoch(5), epoch(5), epoch(6)
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(first, again, strict=True))
    assert not all(torch.equal(a[1], b[1]) for a, b in zip(first, other, strict=True))


def test_skipped_samples_reach_the_batch_by_name(synthetic, tmp_path):
    (tmp_path / "clips").symlink_to(synthetic / "videos" / "clips")
    lines = (synthetic / "videos" / "train.txt").read_text().splitlines()
    (tmp_path / "train.txt").write_text("\n".join([lines[0], "clips/train/right/missing.avi 0", lines[1]]) + "\n")
    config = _config(tmp_path, dataset="video_list", on_bad_sample="skip", num_classes=8)
    dataset = build_dataset(config, "train", spec(16, num_frames=4), train=True)
    batch = next(iter(build_loader(dataset, batch_size=3, shuffle=False, num_workers=0, seed=0)))
    assert batch.inputs.shape == (2, 3, 4, 16, 16)
    (skipped,) = batch.skipped
    assert skipped.path.endswith("missing.avi") and skipped.line == 2 and "not found" in skipped.reason


def test_carved_val_is_stratified_disjoint_and_fixed():
    labels = [0] * 10 + [1] * 5 + [2] * 1
    train, val = stratified_split(labels, 0.2)
    assert Counter(labels[i] for i in val) == {0: 2, 1: 1}  # round(0.2 * n), class 2 keeps its only sample
    assert sorted(np.concatenate([train, val]).tolist()) == list(range(16))
    again_train, again_val = stratified_split(labels, 0.2)
    assert np.array_equal(val, again_val) and np.array_equal(train, again_train)


def test_val_from_train_on_a_dataset_without_val(synthetic):
    config = _config(synthetic, val_split="none", val_from_train=0.25)
    train = build_dataset(config, "train", spec(16), train=True)
    val = build_dataset(config, "val", spec(16), train=False)
    assert len(train) == 30 and len(val) == 10 and not set(train.samples) & set(val.samples)
    assert Counter(label for _, label in val.samples) == dict.fromkeys(range(10), 1)
