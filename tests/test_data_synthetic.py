"""Synthetic sets: same bytes per seed, masks that match, and videos no single frame can classify."""

import hashlib
import math
import time

import numpy as np
import pytest
import torch

from sttool.config.schema import bind
from sttool.data import DataConfig, build_dataset, load_mask, mask_path
from sttool.data.synthetic import SyntheticOptions, make_synthetic
from sttool.data.synthetic.images import chunk_generator
from sttool.data.synthetic.render import SUPERSAMPLE, coverage, render_clips, render_images
from sttool.data.synthetic.shapes import PRETRAIN_SHAPES, SHAPES, inside_polygon
from sttool.data.synthetic.stream import StreamedTask, SyntheticStream
from sttool.data.synthetic.tasks import IMAGE_TASKS
from sttool.data.synthetic.videos import DIRECTIONS
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


def _point_in_polygon(x: float, y: float, vertices: list[tuple[float, float]]) -> bool:
    """Textbook ray casting on one point, in plain Python: the reference for the batched tensor test."""
    inside = False
    for (a, b), (c, d) in zip(vertices, vertices[1:] + vertices[:1], strict=True):
        if (b > y) != (d > y) and x < a + (y - b) * (c - a) / (d - b):
            inside = not inside
    return inside


def test_the_batched_polygon_test_equals_ray_casting_point_by_point():
    star = [(math.cos(math.radians(90 + 36 * i)) * (1.0 if i % 2 == 0 else 0.45),
             math.sin(math.radians(90 + 36 * i)) * (1.0 if i % 2 == 0 else 0.45)) for i in range(10)]
    points = torch.rand(400, 2, generator=torch.Generator().manual_seed(0)) * 2.4 - 1.2
    batched = inside_polygon(points[:, 0], points[:, 1], star)
    assert batched.tolist() == [_point_in_polygon(float(x), float(y), star) for x, y in points]
    assert 0.1 < batched.float().mean() < 0.6


@pytest.mark.parametrize("wrap", [False, True])
def test_coverage_equals_a_per_pixel_reference(wrap):
    # Reference: loop over every supersampled pixel, in plain Python, with the torus distance if wrapping
    size, centre, radius, angle = 12, (10.3, 1.6), 4.5, 0.7
    inside = SHAPES["star"]
    reference = np.zeros((size, size))
    for row in range(size * SUPERSAMPLE):
        for col in range(size * SUPERSAMPLE):
            dx, dy = (col + 0.5) / SUPERSAMPLE - centre[0], (row + 0.5) / SUPERSAMPLE - centre[1]
            if wrap:
                dx, dy = (dx + size / 2) % size - size / 2, (dy + size / 2) % size - size / 2
            u = (dx * math.cos(angle) + dy * math.sin(angle)) / radius
            v = (-dx * math.sin(angle) + dy * math.cos(angle)) / radius
            reference[row // SUPERSAMPLE, col // SUPERSAMPLE] += bool(inside(torch.tensor(u), torch.tensor(v))) / SUPERSAMPLE**2
    alpha = coverage([inside], torch.tensor([0]), size, torch.tensor([centre]), torch.tensor([radius]), torch.tensor([angle]), wrap)
    assert np.allclose(alpha[0].numpy(), reference, atol=1e-6) and reference.sum() > 5


def test_rendered_images_put_the_labelled_shape_under_the_mask():
    labels = torch.arange(10).repeat(3)
    images, masks = render_images(list(SHAPES.values()), labels, 48, torch.Generator().manual_seed(3))
    assert images.shape == (30, 3, 48, 48) and images.dtype == torch.uint8 and masks.shape == (30, 48, 48)
    share = masks.float().mean(dim=(1, 2))
    assert bool((share > 0.03).all() and (share < 0.5).all())
    # inside the mask the object is one flat colour: the pixels fully inside vary far less than the background
    eroded = -torch.nn.functional.max_pool2d(-masks.float().unsqueeze(1), 3, 1, 1).squeeze(1) > 0.5
    for image, inner, mask in zip(images.float(), eroded, masks, strict=True):
        assert image[:, inner].std(dim=1).max() < 1.0 < image[:, ~mask].std(dim=1).max()


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
    clips, _ = render_clips(torch.full((2,), 3), 32, 8, chunk_generator(0, "motion", "train", 3, 0))
    path = root / "videos" / "clips" / "train" / DIRECTIONS[3] / "00001.avi"
    for backend in ("decord", "pyav"):
        assert np.array_equal(make_backend(backend).open(str(path)).get_frames(range(8)), clips[1].permute(0, 2, 3, 1).numpy())
    assert (root / "videos" / "train.txt").read_text().splitlines()[7] == "clips/train/down-left/00001.avi 3"


def test_no_single_frame_statistic_tells_the_direction():
    # 48 videos per class. Any frame's position is uniform on the torus, and kind and colour do not
    # depend on the class: per-class means must agree within 4 standard errors. The displacement
    # between frames must point in the class's direction (the task is solvable from motion).
    size, per_class = 32, 48
    positions, colours, kinds, steps = [], [], [], []
    generator = torch.Generator().manual_seed(7)
    for label in range(len(DIRECTIONS)):
        _, info = render_clips(torch.full((per_class,), label), size, 4, generator)
        centres = info["centres"].double().numpy()  # (N, T, 2)
        positions.append(centres[:, 2])
        colours.append(info["colour"].numpy())
        kinds.append(info["kind"].tolist())
        step = (centres[:, 1] - centres[:, 0] + size / 2) % size - size / 2  # (N, 2) on the torus
        steps.append(np.degrees(np.arctan2(step[:, 1], step[:, 0])) % 360)
    uniform_se = size / np.sqrt(12) / np.sqrt(per_class)
    for label in range(len(DIRECTIONS)):
        assert np.all(np.abs(positions[label].mean(axis=0) - size / 2) < 4 * uniform_se)
        assert np.all(np.abs(colours[label].mean(axis=0) - np.concatenate(colours).mean(axis=0)) < 4 * 0.29 / np.sqrt(per_class))
        assert np.allclose((steps[label] - 45 * label + 180) % 360 - 180, 0, atol=1e-3)
    counts = np.array([[k.count(kind) for kind in range(len(SHAPES))] for k in kinds])  # (classes, kinds)
    expected = counts.sum(axis=0, keepdims=True) / len(DIRECTIONS)
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert chi2 < 110  # 63 degrees of freedom: the 99.9th percentile is about 104


def test_a_stream_is_a_function_of_seed_epoch_and_step():
    from sttool.data.config import InputSpec

    spec = InputSpec(32, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    task = StreamedTask("pretrain", 64)

    def stream(batch, accum=1):
        return SyntheticStream(task, batch, accum, 1, 0, 5, spec, flips=True, masks=True, device=torch.device("cpu"))

    first = stream(16)
    assert first.steps() == 4 and len(first) == 4
    batches = list(first)
    assert [b.inputs.shape for b in batches] == [(16, 3, 32, 32)] * 4 and batches[0].masks.shape == (16, 32, 32)
    assert -1.0 <= float(batches[0].inputs.min()) and float(batches[0].inputs.max()) <= 1.0
    again = stream(16)
    again.set_epoch(0, 2)  # resuming at step 2 draws what the uninterrupted stream drew there
    assert torch.equal(next(iter(again)).inputs, batches[2].inputs)
    again.set_epoch(1)
    assert not torch.equal(next(iter(again)).inputs, batches[0].inputs)
    assert 0 <= int(batches[0].labels.min()) and int(batches[0].labels.max()) < task.num_classes == 16


def test_a_streamed_label_names_the_class_folder_its_shape_is_written_to(tmp_path):
    # The files' labels are the sorted folder names; the stream must use the same label for the same shape
    make_synthetic(SyntheticOptions(out=str(tmp_path), task="pretrain", image_size=32, images_per_class=(0, 1, 0), videos=False))
    on_disk = build_dataset(bind(DataConfig, {"root": str(tmp_path), "task": "pretrain"}, "t"), "val", spec(32), train=False)
    assert StreamedTask("pretrain", 1).class_names == list(on_disk.class_names)
    stream = SyntheticStream(StreamedTask("pretrain", 16), 16, 1, 1, 0, 0, spec(32), False, True, torch.device("cpu"))
    rendered = [IMAGE_TASKS["pretrain"].names[row] for row in stream.generation_index.tolist()]  # label -> shape drawn
    assert rendered == list(on_disk.class_names)


@pytest.mark.slow
def test_the_default_set_generates_in_under_a_minute(tmp_path):
    start = time.perf_counter()
    images, videos = make_synthetic(SyntheticOptions(out=str(tmp_path)))
    assert time.perf_counter() - start < 60
    assert images.counts == {"train": 1000, "val": 500, "test": 500} and videos.counts == {"train": 960, "val": 200, "test": 200}
