"""``sttool prepare``: synthetic sets, VTAB-1K checks and video lists, bad files named, exit codes."""

import csv
import json
import os

import pytest
from typer.testing import CliRunner

from sttool.cli.main import app
from sttool.config.schema import bind
from sttool.data import DataConfig, build_dataset
from tests.data_helpers import make_vtab, spec, write_stripe_video

runner = CliRunner()


def test_prepare_synthetic_says_where_everything_went(tmp_path):
    out = tmp_path / "syn"
    result = runner.invoke(app, ["prepare", "synthetic", "--out", str(out), "--image-size", "32", "--images-per-class", "2,1,1",
                                 "--videos-per-class", "1,1,1", "--frames", "4", "--video-size", "32"])
    assert result.exit_code == 0, result.output
    assert f"shapes: {out / 'images'} (20 train, 10 val, 10 test; 10 classes" in result.output
    assert f"masks: {out / 'masks'}" in result.output and f"motion: {out / 'videos'} (8 train, 8 val, 8 test" in result.output
    assert "images: 40/40 (100%)" in result.output  # plain progress lines when not on a terminal
    assert len(list((out / "masks").rglob("*.png"))) == 40 and len((out / "videos" / "test.txt").read_text().splitlines()) == 8


def test_prepare_synthetic_rejects_bad_counts(tmp_path):
    result = runner.invoke(app, ["prepare", "synthetic", "--out", str(tmp_path), "--images-per-class", "10,2"])
    assert result.exit_code == 2 and "--images-per-class: '10,2' is not three comma-separated counts" in result.output


@pytest.fixture
def vtab(tmp_path):
    make_vtab(tmp_path, "dtd", {"train800": 6, "val200": 2, "test": 4}, num_classes=47)
    make_vtab(tmp_path, "kitti", {"train800": 4, "val200": 2, "test": 2}, num_classes=4)
    return tmp_path


def test_prepare_vtab_counts_lists_per_task(vtab):
    result = runner.invoke(app, ["prepare", "vtab", str(vtab)])
    assert result.exit_code == 0, result.output
    assert "all listed images exist, decode and have labels in range" in result.output
    rows = {line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:-1]] for line in result.output.splitlines() if line.count("│") == 8}
    assert rows["dtd"] == ["47", "6", "2", "8", "4", "0"] and rows["kitti"] == ["4", "4", "2", "6", "2", "0"]


def test_prepare_vtab_names_bad_files_with_list_and_line(vtab):
    broken = vtab / "kitti" / "images" / "0001.png"
    broken.write_bytes(broken.read_bytes()[:-30])  # cut inside the image data
    (vtab / "dtd" / "images" / "0009.png").unlink()
    (vtab / "kitti" / "test.txt").write_text("images/0006.png 0\nimages/0007.png 4\n")
    result = runner.invoke(app, ["prepare", "vtab", str(vtab)])
    assert result.exit_code == 1
    output = " ".join(result.output.split())
    assert f"bad: {vtab}/kitti/train800.txt line 2: {vtab}/kitti/images/0001.png: cannot decode" in output
    assert f"bad: {vtab}/kitti/train800val200.txt line 2:" in output  # the same file in the union list
    assert f"bad: {vtab}/dtd/test.txt line 2: {vtab}/dtd/images/0009.png: file not found" in output
    assert f"bad: {vtab}/kitti/test.txt line 2: {vtab}/kitti/images/0007.png: label 4 is outside 0..3" in output
    only = runner.invoke(app, ["prepare", "vtab", str(vtab), "--task", "dtd"])
    assert only.exit_code == 1 and "kitti" not in only.output


def test_prepare_vtab_missing_root_is_a_usage_error(tmp_path):
    result = runner.invoke(app, ["prepare", "vtab", str(tmp_path / "none")])
    assert result.exit_code == 2 and "does not exist" in result.output


@pytest.fixture
def videos(tmp_path):
    root = tmp_path / "videos"
    write_stripe_video(root / "a" / "good.avi", 30)
    write_stripe_video(root / "b" / "good two.avi", 12)
    write_stripe_video(root / "b" / "short.avi", 3)
    (root / "b" / "junk.avi").write_bytes(os.urandom(300))
    os.mkfifo(root / "hangs.avi")
    (tmp_path / "train.txt").write_text("a/good.avi 0\nb/junk.avi 1\nmissing.avi 1\nb/good two.avi 1\nhangs.avi 0\n")
    (tmp_path / "val.txt").write_text("b/short.avi 1\na/good.avi 0\n")
    return tmp_path


def test_prepare_videos_lists_the_good_and_reports_the_bad(videos):
    out = videos / "prepared"
    args = ["prepare", "videos", "--dataset", "list", "--root", str(videos / "videos"), "--annotations", str(videos / "train.txt"),
            "--annotations", str(videos / "val.txt"), "--out", str(out), "--timeout", "2", "--min-frames", "8"]
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    output = " ".join(result.output.split())
    assert f"{videos}/train.txt line 2: {videos}/videos/b/junk.avi: undecodable: cannot open" in output
    assert f"{videos}/train.txt line 3: {videos}/videos/missing.avi: missing: file not found" in output
    assert f"{videos}/train.txt line 5: {videos}/videos/hangs.avi: timeout: no answer within 2 s" in output
    assert f"{videos}/val.txt line 1: {videos}/videos/b/short.avi: too short: 3 decodable frames < 8 needed" in output
    assert "4 bad videos (1 missing, 1 timeout, 1 too short, 1 undecodable)" in output
    assert (out / "train.txt").read_text() == "../videos/a/good.avi 0\n../videos/b/good two.avi 1\n"
    with open(out / "manifest.csv") as handle:
        manifest = list(csv.DictReader(handle))
    assert [(m["split"], m["num_frames"], m["width"], m["height"]) for m in manifest] == [("train", "30", "64", "32"), ("train", "12", "64", "32"), ("val", "30", "64", "32")]
    dataset = build_dataset(bind(DataConfig, {"dataset": "video_list", "root": str(out)}, "t"), "train", spec(16, num_frames=4), train=True)
    assert dataset.num_classes == 2 and dataset[1][0].shape == (3, 4, 16, 16)


def test_prepare_videos_from_k400_and_ssv2_annotations(tmp_path):
    (tmp_path / "train.csv").write_text("label,youtube_id,time_start,time_end,split\nb,aaaaaaaaaaa,0,10,train\na,bbbbbbbbbbb,3,13,train\n")
    write_stripe_video(tmp_path / "clips" / "b" / "aaaaaaaaaaa_000000_000010.avi", 10)
    write_stripe_video(tmp_path / "clips" / "a" / "bbbbbbbbbbb_000003_000013.avi", 10)
    result = runner.invoke(app, ["prepare", "videos", "--dataset", "k400", "--root", str(tmp_path / "clips"), "--annotations",
                                 str(tmp_path / "train.csv"), "--out", str(tmp_path / "k400")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "k400" / "train.txt").read_text().split() == ["../clips/b/aaaaaaaaaaa_000000_000010.avi", "1", "../clips/a/bbbbbbbbbbb_000003_000013.avi", "0"]
    assert (tmp_path / "k400" / "classes.txt").read_text() == "a\nb\n"

    (tmp_path / "labels.json").write_text(json.dumps({"Holding something": "0", "Dropping something": "1"}))
    (tmp_path / "validation.json").write_text(json.dumps([{"id": "5", "template": "Dropping [something]"}]))
    write_stripe_video(tmp_path / "ssv2" / "5.webm", 9, codec="libvpx-vp9", pix_fmt="yuv420p")
    result = runner.invoke(app, ["prepare", "videos", "--dataset", "ssv2", "--root", str(tmp_path / "ssv2"), "--annotations",
                                 str(tmp_path / "labels.json"), "--annotations", str(tmp_path / "validation.json"), "--out", str(tmp_path / "s")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "s" / "val.txt").read_text() == "../ssv2/5.webm 1\n"


def test_prepare_micro_vtab_writes_the_chosen_tasks_in_the_vtab_layout(tmp_path):
    out = tmp_path / "mv"
    result = runner.invoke(app, ["prepare", "synthetic", "--task", "micro-vtab", "--out", str(out), "--tasks", "count,cells",
                                 "--images-per-class", "8,4,4"])
    assert result.exit_code == 0, result.output
    assert "count (structured, 8 classes, like CLEVR-count): 8 train800, 4 val200, 4 test" in result.output
    assert sorted(p.name for p in out.iterdir()) == ["cells", "count"]
    assert len((out / "cells" / "train800val200.txt").read_text().splitlines()) == 12
    bad = runner.invoke(app, ["prepare", "synthetic", "--task", "micro-vtab", "--out", str(tmp_path / "x"), "--tasks", "cont"])
    assert bad.exit_code != 0 and "micro-VTAB task 'cont' is not one of" in bad.output and not (tmp_path / "x" / "count").exists()
