"""SSv2 JSON, K400 CSV and list files with manifests, on small fixtures made here, read as clips."""

import json

import pytest
import torch

from sttool.config.schema import bind
from sttool.data import DataConfig, SkippedSample, build_dataset
from sttool.data.listfile import write_manifest
from sttool.errors import SttoolError
from tests.data_helpers import read_stripes, spec, write_stripe_video

TEMPLATES = {"Pushing something from left to right": "1", "Pushing something from right to left": "0", "Holding something": "2"}


@pytest.fixture
def ssv2(tmp_path):
    (tmp_path / "something-something-v2-labels.json").write_text(json.dumps(TEMPLATES))
    train = [
        {"id": "11", "label": "pushing a cup from left to right", "template": "Pushing [something] from left to right", "placeholders": ["a cup"]},
        {"id": "12", "label": "holding a pen", "template": "Holding [something]", "placeholders": ["a pen"]},
        {"id": "13", "label": "pushing a box from right to left", "template": "Pushing [something] from right to left", "placeholders": ["a box"]},
    ]
    (tmp_path / "something-something-v2-train.json").write_text(json.dumps(train))
    (tmp_path / "something-something-v2-validation.json").write_text(json.dumps(train[:1]))
    for vid in ("11", "12"):
        write_stripe_video(tmp_path / "20bn-something-something-v2" / f"{vid}.webm", 24, codec="libvpx-vp9", pix_fmt="yuv420p")
    return tmp_path  # video 13 is missing


def _config(dataset, root, **options):
    return bind(DataConfig, {"dataset": dataset, "root": str(root), "decode_timeout": 0, **options}, "test")


def test_ssv2_templates_map_to_class_ids_and_clips_use_segments(ssv2):
    config = _config("ssv2", ssv2, augment="none")
    train = build_dataset(config, "train", spec(16, num_frames=4), train=False)
    assert train.class_names == ["Pushing something from right to left", "Pushing something from left to right", "Holding something"]
    assert [label for _, label in train.samples] == [1, 2, 0]
    assert train.samples[0][0] == str(ssv2 / "20bn-something-something-v2" / "11.webm")
    x, label = train[0]
    assert x.shape == (3, 4, 16, 16) and label == 1
    assert len(build_dataset(config, "test", spec(16, num_frames=4), train=False)) == 1  # test = official validation


def test_ssv2_segment_sampling_reads_the_segment_centres(ssv2):
    config = _config("ssv2", ssv2, augment="resize")
    dataset = build_dataset(config, "test", spec(64, num_frames=4), train=False)
    dataset.views = lambda clip: [clip]  # keep the decoded uint8 frames to read their stripes
    clip, _ = dataset[0]
    assert [read_stripes(frame.permute(1, 2, 0).numpy()) for frame in clip] == [3, 9, 15, 21]  # 24 frames, 4 segments of 6


def test_ssv2_missing_video_is_named_with_its_entry(ssv2):
    train = build_dataset(_config("ssv2", ssv2), "train", spec(16, num_frames=4), train=True)
    with pytest.raises(SttoolError, match=r"train\.json entry 3 \(id 13\): .*13\.webm: file not found"):
        train[2]
    skipped = build_dataset(_config("ssv2", ssv2, on_bad_sample="skip"), "train", spec(16, num_frames=4), train=True)[2]
    assert isinstance(skipped, SkippedSample) and skipped.shape == (3, 4, 16, 16)


def test_ssv2_unknown_template_and_unlabelled_test_json(ssv2):
    entries = json.loads((ssv2 / "something-something-v2-validation.json").read_text())
    entries[0]["template"] = "Holding [something] tightly"
    (ssv2 / "something-something-v2-validation.json").write_text(json.dumps(entries))
    with pytest.raises(SttoolError, match=r"validation\.json entry 1 \(id 11\): template 'Holding something tightly' is not in"):
        build_dataset(_config("ssv2", ssv2), "test", spec(16, num_frames=4), train=False)
    (ssv2 / "something-something-v2-validation.json").write_text(json.dumps([{"id": "11"}]))
    with pytest.raises(SttoolError, match="has no 'template'"):
        build_dataset(_config("ssv2", ssv2), "test", spec(16, num_frames=4), train=False)


@pytest.fixture
def k400(tmp_path):
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "train.csv").write_text(
        "label,youtube_id,time_start,time_end,split\n"
        '"cutting, watermelon",aaaaaaaaaaa,10,20,train\n'
        "abseiling,bbbbbbbbbbb,0,10,train\n"
        "abseiling,ccccccccccc,5,15,train\n"
    )
    (tmp_path / "annotations" / "validate.csv").write_text("label,youtube_id,time_start,time_end,split\nabseiling,ddddddddddd,1,11,val\n")
    write_stripe_video(tmp_path / "train" / "cutting, watermelon" / "aaaaaaaaaaa_000010_000020.avi", 40)
    write_stripe_video(tmp_path / "elsewhere" / "bbbbbbbbbbb.avi", 40)  # another naming, found by id
    write_stripe_video(tmp_path / "val" / "abseiling" / "ddddddddddd_000001_000011.avi", 40)
    return tmp_path  # ccccccccccc is missing


def test_k400_classes_are_sorted_train_labels_and_files_are_found(k400):
    train = build_dataset(_config("k400", k400), "train", spec(16, num_frames=4), train=True)
    assert train.class_names == ["abseiling", "cutting, watermelon"]
    assert [label for _, label in train.samples] == [1, 0, 0]
    assert train.samples[1][0].endswith("elsewhere/bbbbbbbbbbb.avi")
    assert train[0][0].shape == (3, 4, 16, 16)
    with pytest.raises(SttoolError, match=r"train\.csv line 4: .*ccccccccccc_000005_000015\.mp4: file not found"):
        train[2]
    test = build_dataset(_config("k400", k400), "test", spec(16, num_frames=4), train=False)
    assert test.samples == [(str(k400 / "val/abseiling/ddddddddddd_000001_000011.avi"), 0)]


def test_k400_dense_multi_view_clips(k400):
    config = _config("k400", k400, test_clips=2, test_crops=3, frame_stride=4)
    x, label = build_dataset(config, "test", spec(16, num_frames=4), train=False)[0]
    assert x.shape == (6, 3, 4, 16, 16) and label == 0
    assert not torch.equal(x[0], x[3])  # clips at different times
    assert not torch.equal(x[0], x[1])  # crops at different places (stripes change along x)


def test_video_list_clamps_sampling_to_the_manifest_frame_count(tmp_path):
    write_stripe_video(tmp_path / "clips" / "a.avi", 40)
    (tmp_path / "train.txt").write_text("clips/a.avi 1\n")
    (tmp_path / "classes.txt").write_text("zero\none\n")
    write_manifest(tmp_path / "manifest.csv", [{"split": "train", "path": "clips/a.avi", "label": 1, "num_frames": 10, "fps": 8, "width": 64, "height": 32}])
    config = _config("video_list", tmp_path, sampling="segment", augment="resize")
    dataset = build_dataset(config, "train", spec(64, num_frames=5), train=False)
    assert dataset.class_names == ["zero", "one"] and dataset.frame_counts
    dataset.views = lambda clip: [clip]
    clip, _ = dataset[0]
    assert [read_stripes(frame.permute(1, 2, 0).numpy()) for frame in clip] == [1, 3, 5, 7, 9]  # centres of 5 segments of 10


def test_video_list_errors_name_file_and_line(tmp_path):
    write_stripe_video(tmp_path / "a.avi", 12)
    (tmp_path / "a.avi.part").write_bytes(b"\x00" * 100)
    (tmp_path / "train.txt").write_text("a.avi 0\na.avi.part 1\n")
    config = _config("video_list", tmp_path, num_classes=2)
    dataset = build_dataset(config, "train", spec(16, num_frames=4), train=True)
    with pytest.raises(SttoolError, match=r"train\.txt line 2: .*a\.avi\.part: cannot open"):
        dataset[1]
    skipping = build_dataset(_config("video_list", tmp_path, num_classes=2, on_bad_sample="skip"), "train", spec(16, num_frames=4), train=True)
    skipped = skipping[1]
    assert isinstance(skipped, SkippedSample) and skipped.line == 2 and skipped.reason.startswith("cannot open")
    (tmp_path / "train.txt").write_text("a.avi 0\na.avi 5\n")
    with pytest.raises(SttoolError, match=r"train\.txt line 2: .*label 5 is outside 0\.\.1 \(2 classes from data.num_classes\)"):
        build_dataset(config, "train", spec(16, num_frames=4), train=True)
    with pytest.raises(SttoolError, match=r"gives video clips, but the model takes images"):
        build_dataset(config, "train", spec(16), train=True)
