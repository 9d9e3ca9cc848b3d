"""Synthetic sets: same bytes per seed, masks that match, and videos no single frame can classify."""

import hashlib
import time

import numpy as np
import pytest

from sttool.config.schema import bind
from sttool.data import DataConfig, build_dataset, load_mask, mask_path
from sttool.data.synthetic import SyntheticOptions, make_synthetic
from sttool.data.synthetic.canvas import SUPERSAMPLE, shape_alpha
from sttool.data.synthetic.images import sample_rng
from sttool.data.synthetic.shapes import PRETRAIN_SHAPES, SHAPES
from sttool.data.synthetic.videos import DIRECTIONS, render_video
from sttool.data.video.backends import make_backend
from sttool.errors import SttoolError
from tests.data_helpers import spec

SMALL = dict(image_size=32, images_per_class=(2, 1, 1), video_size=32, num_frames=6, videos_per_class=(1, 1, 0))


def _digest(root):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        make_synthetic(SyntheticOptions(out=str(tmp_path / name), seed=seed, **SMALL))
    a, b, c = (_digest(tmp_path / name) for name in "abc")
    assert a == b and len(a) == 2 * 40 + 16 + 3 + 1 + 2  # images + masks, videos, lists, classes, info files
    assert a.keys() == c.keys() and sum(a[k] != c[k] for k in a) > 90


def test_regenerating_replaces_the_old_set_and_refuses_foreign_folders(tmp_path):
    make_synthetic(SyntheticOptions(out=str(tmp_path / "s"), **{**SMALL, "images_per_class": (3, 1, 1)}))
    make_synthetic(SyntheticOptions(out=str(tmp_path / "s"), **SMALL))
    assert len(list((tmp_path / "s" / "images" / "train").rglob("*.png"))) == 20
    (tmp_path / "mine" / "images").mkdir(parents=True)
    with pytest.raises(SttoolError, match="was not written by 'sttool prepare synthetic'"):
        make_synthetic(SyntheticOptions(out=str(tmp_path / "mine"), **SMALL))


def test_vocabularies_are_disjoint():
    assert len(SHAPES) == 10 and len(PRETRAIN_SHAPES) == 16 and not set(SHAPES) & set(PRETRAIN_SHAPES)


@pytest.mark.parametrize("wrap", [False, True])
def test_windowed_rendering_equals_the_whole_image_reference(wrap):
    # Reference: evaluate the shape on every supersampled pixel, with the torus distance if wrapping
    size, centre, radius, angle = 24, (21.3, 2.6), 7.5, 0.7
    inside = SHAPES["star"]
    y, x = (np.mgrid[0 : size * SUPERSAMPLE, 0 : size * SUPERSAMPLE] + 0.5) / SUPERSAMPLE
    dx, dy = x - centre[0], y - centre[1]
    if wrap:
        dx, dy = (dx + size / 2) % size - size / 2, (dy + size / 2) % size - size / 2
    u, v = (dx * np.cos(angle) + dy * np.sin(angle)) / radius, (-dx * np.sin(angle) + dy * np.cos(angle)) / radius
    reference = inside(u, v).reshape(size, SUPERSAMPLE, size, SUPERSAMPLE).mean(axis=(1, 3))
    assert np.array_equal(shape_alpha(inside, size, centre, radius, angle, wrap=wrap), reference)


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    options = SyntheticOptions(out=str(root), image_size=48, images_per_class=(6, 2, 2), num_frames=8, video_size=32, videos_per_class=(2, 1, 1))
    return root, make_synthetic(options)


def test_masks_are_found_and_cover_a_minority_of_the_image(small_set):
    root, (images, _) = small_set
    assert 0.12 < images.mean_object_area < 0.30
    dataset = build_dataset(bind(DataConfig, {"root": str(root)}, "t"), "train", spec(48), train=False)
    path = dataset.samples[7][0]
    assert mask_path(path) == root / "masks" / "train" / "circle" / "00001.png"
    mask = load_mask(path)
    assert mask.shape == (48, 48) and mask.dtype == bool and 0 < mask.mean() < 0.5
    assert load_mask(root / "videos" / "train.txt") is None


def test_the_pretrain_set_is_another_task_and_is_checked(tmp_path, small_set):
    root, _ = small_set
    with pytest.raises(SttoolError, match="holds the 'shapes' set"):
        build_dataset(bind(DataConfig, {"root": str(root), "task": "pretrain"}, "t"), "train", spec(48), train=True)
    (report,) = make_synthetic(SyntheticOptions(out=str(tmp_path), task="pretrain", image_size=32, images_per_class=(1, 1, 1), videos=False))
    assert report.classes == list(PRETRAIN_SHAPES) and report.counts == {"train": 16, "val": 16, "test": 16}


def test_written_videos_decode_to_the_rendered_frames(small_set):
    root, _ = small_set
    frames, _ = render_video(sample_rng(0, "motion", "train", 3, 1), 3, 32, 8)
    path = root / "videos" / "clips" / "train" / DIRECTIONS[3] / "00001.avi"
    for backend in ("decord", "pyav"):
        assert np.array_equal(make_backend(backend).open(str(path)).get_frames(range(8)), frames)
    assert (root / "videos" / "train.txt").read_text().splitlines()[7] == "clips/train/down-left/00001.avi 3"


def test_no_single_frame_statistic_tells_the_direction():
    # 48 videos per class. Any frame's position is uniform on the torus, and kind and colour do not
    # depend on the class: per-class means must agree within 4 standard errors. The displacement
    # between frames must point in the class's direction (the task is solvable from motion).
    size, per_class = 32, 48
    positions, colours, kinds, steps = [], [], [], []
    for label in range(len(DIRECTIONS)):
        infos = [render_video(sample_rng(7, "motion", "train", label, i), label, size, 4)[1] for i in range(per_class)]
        centres = np.array([info["centres"] for info in infos])  # (N, T, 2)
        positions.append(centres[:, 2])
        colours.append(np.array([info["colour"] for info in infos]))
        kinds.append([info["kind"] for info in infos])
        step = (centres[:, 1] - centres[:, 0] + size / 2) % size - size / 2  # (N, 2) on the torus
        steps.append(np.degrees(np.arctan2(step[:, 1], step[:, 0])) % 360)
    uniform_se = size / np.sqrt(12) / np.sqrt(per_class)
    for label in range(len(DIRECTIONS)):
        assert np.all(np.abs(positions[label].mean(axis=0) - size / 2) < 4 * uniform_se)
        assert np.all(np.abs(colours[label].mean(axis=0) - np.concatenate(colours).mean(axis=0)) < 4 * 0.29 / np.sqrt(per_class))
        assert np.allclose(steps[label], 45 * label, atol=1e-6)
    counts = np.array([[k.count(kind) for kind in SHAPES] for k in kinds])  # (classes, kinds)
    expected = counts.sum(axis=0, keepdims=True) / len(DIRECTIONS)
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert chi2 < 110  # 63 degrees of freedom: the 99.9th percentile is about 104


@pytest.mark.slow
def test_the_default_set_generates_in_under_a_minute(tmp_path):
    start = time.perf_counter()
    images, videos = make_synthetic(SyntheticOptions(out=str(tmp_path)))
    assert time.perf_counter() - start < 60
    assert images.counts == {"train": 1000, "val": 200, "test": 500} and videos.counts == {"train": 320, "val": 80, "test": 160}
