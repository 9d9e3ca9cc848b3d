"""VTAB-1K: the honest split protocol, class counts, list errors naming file and line."""

import pytest

from sttool.config.schema import bind
from sttool.data import DataConfig, SkippedSample, build_dataset, has_split
from sttool.errors import SttoolError
from tests.data_helpers import make_vtab, spec

COUNTS = {"train800": 8, "val200": 4, "test": 6}


@pytest.fixture
def vtab(tmp_path):
    make_vtab(tmp_path, "eurosat", COUNTS, num_classes=10)
    return tmp_path


def _config(root, **options):
    return bind(DataConfig, {"dataset": "vtab", "root": str(root), "task": "eurosat", "augment": "resize", **options}, "test")


def test_default_protocol_trains_on_train800_validates_on_val200_tests_on_test(vtab):
    config = _config(vtab)
    sizes = {split: len(build_dataset(config, split, spec(8), train=split == "train")) for split in ("train", "val", "test")}
    assert sizes == {"train": 8, "val": 4, "test": 6}
    train = build_dataset(config, "train", spec(8), train=True)
    assert train.num_classes == 10  # from the task table, although train800 here holds 8 labels
    assert train.samples[3] == (str(vtab / "eurosat" / "images/0003.png"), 3)
    x, label = train[3]
    assert x.shape == (3, 8, 8) and label == 3


def test_final_run_trains_on_train800val200_and_has_no_val(vtab):
    config = _config(vtab, train_split="train800val200", val_split=None)
    assert len(build_dataset(config, "train", spec(8), train=True)) == 12
    assert not has_split(config, "val")
    with pytest.raises(SttoolError, match="no val split.*data.val_from_train"):
        build_dataset(config, "val", spec(8), train=False)


def test_val_from_train_carves_a_val_split_when_there_is_none(vtab):
    config = _config(vtab, train_split="train800val200", val_from_train=0.25)
    assert has_split(config, "val")
    train = build_dataset(config, "train", spec(8), train=True)
    val = build_dataset(config, "val", spec(8), train=False)
    assert not set(train.samples) & set(val.samples) and len(train) + len(val) == 12


def test_val_from_train_conflicts_with_an_own_val_split(vtab):
    with pytest.raises(SttoolError, match="has its own val split 'val200'"):
        build_dataset(_config(vtab, val_from_train=0.1), "train", spec(8), train=True)


def test_class_count_checks(vtab):
    with pytest.raises(SttoolError, match="num_classes: 12, but VTAB-1K task 'eurosat' has 10 classes"):
        _config(vtab, num_classes=12)
    with pytest.raises(SttoolError, match="'eurosta' is not a VTAB-1K task; did you mean 'eurosat'"):
        _config(vtab, task="eurosta")
    make_vtab(vtab, "mine", COUNTS, num_classes=3)
    custom = build_dataset(_config(vtab, task="mine", num_classes=3), "train", spec(8), train=True)
    assert custom.num_classes == 3


def test_missing_folder_and_list_name_what_exists(vtab):
    with pytest.raises(SttoolError, match=r"task folder .*/dtd not found \(found: eurosat\)"):
        build_dataset(_config(vtab, task="dtd"), "train", spec(8), train=True)
    (vtab / "eurosat" / "test.txt").unlink()
    with pytest.raises(SttoolError, match=r"eurosat/test\.txt not found; eurosat has: train800, train800val200, val200"):
        build_dataset(_config(vtab), "test", spec(8), train=False)


def test_label_out_of_range_names_list_and_line_or_is_skipped(vtab):
    listing = vtab / "eurosat" / "test.txt"
    lines = listing.read_text().splitlines()
    lines[2] = "images/0014.png 10"
    listing.write_text("\n".join(lines) + "\n")
    with pytest.raises(SttoolError, match=r"eurosat/test\.txt line 3: .*0014\.png: label 10 is outside 0\.\.9"):
        build_dataset(_config(vtab), "test", spec(8), train=False)
    skipping = build_dataset(_config(vtab, on_bad_sample="skip"), "test", spec(8), train=False)
    assert len(skipping) == 5 and [r.line for r in skipping.rejected] == [3]


def test_empty_and_malformed_lists_and_missing_images(vtab):
    (vtab / "eurosat" / "val200.txt").write_text("\n")
    with pytest.raises(SttoolError, match=r"val200\.txt: the list is empty"):
        build_dataset(_config(vtab), "val", spec(8), train=False)
    (vtab / "eurosat" / "val200.txt").write_text("images/0008.png 1\nimages/0009.png one\n")
    with pytest.raises(SttoolError, match=r"val200\.txt line 2: expected '<relative/path> <integer label>'"):
        build_dataset(_config(vtab), "val", spec(8), train=False)
    (vtab / "eurosat" / "images" / "0002.png").unlink()
    with pytest.raises(SttoolError, match=r"train800\.txt line 3: .*0002\.png: file not found"):
        build_dataset(_config(vtab), "train", spec(8), train=True)[2]
    skipped = build_dataset(_config(vtab, on_bad_sample="skip"), "train", spec(8), train=True)[2]
    assert isinstance(skipped, SkippedSample) and skipped.line == 3 and skipped.reason == "file not found"
