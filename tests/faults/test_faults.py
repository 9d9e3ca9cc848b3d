"""The fault suite: bad input and hostile disks give a one-line error naming the file or key, a counted
skip, or the right output; never a traceback, a hang, or a changed file when a command is refused.

Every bad file is made by ``generators`` on the fly. Each test states the class it covers; the table
in benchmarks/RESULTS.md lists them.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

from sttool.cli.main import app
from sttool.config.schema import bind
from sttool.data import DataConfig, build_dataset
from sttool.data.image_dataset import load_rgb
from sttool.data.listfile import read_list
from sttool.data.samples import SkippedSample
from sttool.engine import finetune
from sttool.engine.loop import EpochRunner, NonFiniteLoss
from sttool.errors import SttoolError
from sttool.runs.checkpoint import read_checkpoint
from sttool.runs.folder import LOCK_FILE, RunDir, write_text
from sttool.runs.recipe import bind_recipe
from tests.data_helpers import make_vtab, save_image, spec
from tests.faults import generators as make
from tests.helpers import TemplateImages, tiny_recipe_data

runner = CliRunner()


def datasets(hook=None):
    return {"train": TemplateImages(96, hook=hook), "val": TemplateImages(32, seed=1), "test": TemplateImages(48, seed=2)}


def recipe(out_dir, **train):
    return bind_recipe(tiny_recipe_data(out_dir, **train), "test:")


def one_line_error(result, code: int = 2) -> str:
    """The command failed with ``code`` and said why in one line, without a traceback."""
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.output
    return errors[0]


@pytest.fixture
def image_run(tmp_path):
    """A recipe file over a small image folder (4 classes x 4 images per split) and its run folder."""
    root = tmp_path / "images"
    for split in ("train", "val", "test"):
        for label in range(4):
            for index in range(4):
                save_image(root / split / f"c{label}" / f"{index}.png", value=40 + 60 * label + index, size=32)
    data = tiny_recipe_data(tmp_path / "run", epochs=1, batch_size=8)
    data["data"] = {"dataset": "imagefolder", "root": str(root), "num_workers": 0, "augment": "none"}
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(data))
    return path, tmp_path / "run"


# --- a run folder belongs to one process ------------------------------------------------------------------


def test_a_second_process_on_the_same_run_folder_is_refused_naming_the_holder(image_run):
    path, run = image_run
    with RunDir(run).lock():
        before = make.folder_digest(run)
        result = runner.invoke(app, ["finetune", str(path)])
        line = one_line_error(result)
        assert f"{run} is in use by process {os.getpid()}" in line and LOCK_FILE in line
        assert make.folder_digest(run) == before
    assert runner.invoke(app, ["finetune", str(path)]).exit_code == 0  # the holder ended: the folder is free


# --- hyper-parameters are checked when the recipe is read ---------------------------------------------------


@pytest.mark.parametrize("override,message", [
    ("optim.lr=.inf", "optim.lr: inf is not a finite number"),
    ("optim.lr=.nan", "optim.lr: nan is not a finite number"),
    ("optim.lr=1e6", "optim.lr: 1000000.0 is outside (0, 10]"),
    ("optim.weight_decay=50", "optim.weight_decay: 50.0 is above 10"),
    ("data.decode_timeout=-.inf", "data.decode_timeout: -inf is not a finite number"),
    ("train.epochs=10000000", "is beyond any run sttool can make"),
])
def test_absurd_hyper_parameters_are_refused_before_anything_runs(image_run, override, message):
    path, run = image_run
    line = one_line_error(runner.invoke(app, ["finetune", str(path), override]))
    assert message in line and str(path) in line
    assert not run.exists()


# --- a checkpoint is written only while the model is finite -------------------------------------------------


def test_a_diverged_model_is_never_checkpointed_and_the_last_good_one_is_named(tmp_path, monkeypatch):
    # the head's BatchNorm statistics turn NaN in epoch 2: the training loss stays finite (training
    # normalises with batch statistics), the validation loss does not
    real_step = EpochRunner._optimizer_step

    def poisoning_step(self, global_step):
        lr = real_step(self, global_step)
        if global_step == 2 * self.steps_per_epoch - 1:
            self.model.head_norm.running_var.fill_(float("nan"))
        return lr

    monkeypatch.setattr(EpochRunner, "_optimizer_step", poisoning_step)
    run = tmp_path / "run"
    with pytest.raises(NonFiniteLoss) as err:
        finetune(recipe(run), datasets=datasets())
    assert str(err.value).startswith("the model diverged in epoch 2: 'head_norm.running_var' holds NaN or infinite values")
    assert f"the last good one is {run / 'checkpoints' / 'last.safetensors'} (after epoch 1)" in str(err.value)
    for name in ("last", "best"):
        state, _, meta = read_checkpoint(run / "checkpoints" / f"{name}.safetensors")
        assert all(bool(torch.isfinite(v).all()) for v in state.values() if v.is_floating_point())
        assert meta["epoch"] == 1


def test_a_checkpoint_holding_nan_is_refused_by_evaluate(tmp_path):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    run = tmp_path / "run"
    finetune(recipe(run, epochs=1), datasets=datasets())
    path = run / "checkpoints" / "best.safetensors"
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
    tensors = load_file(str(path))
    tensors["model/head.weight"] = torch.full_like(tensors["model/head.weight"], float("nan"))
    bad = tmp_path / "bad.safetensors"
    save_file(tensors, str(bad), metadata=metadata)
    line = one_line_error(runner.invoke(app, ["evaluate", str(bad), "--no-throughput"]))
    assert str(bad) in line and "'head.weight' holds NaN or infinite values" in line


# --- images keep their bit depth and colour mode ------------------------------------------------------------


def test_a_16_bit_png_keeps_its_gradient_in_training_visualize_and_prepare(tmp_path):
    ramp = make.png16(tmp_path / "vtab" / "gray" / "images" / "0000.png")
    pixels = np.asarray(load_rgb(str(tmp_path / "vtab" / "gray" / "images" / "0000.png")))
    assert pixels.shape == (16, 16, 3) and np.array_equal(pixels[..., 0], pixels[..., 2])
    assert np.abs(pixels[..., 0].astype(int) - np.round(ramp / 257)).max() <= 1  # not all white
    values = make.png32_int(tmp_path / "deep.tif")
    deep = np.asarray(load_rgb(str(tmp_path / "deep.tif")))[..., 0]
    assert np.abs(deep.astype(int) - np.round(values / 257)).max() <= 1
    # the training path: a VTAB task whose only image is the 16-bit one
    for split in ("train800", "val200", "train800val200", "test"):
        (tmp_path / "vtab" / "gray" / f"{split}.txt").write_text("images/0000.png 0\n")
    config = bind(DataConfig, {"dataset": "vtab", "root": str(tmp_path / "vtab"), "task": "gray", "num_classes": 2,
                               "augment": "none"}, "t")
    image, label = build_dataset(config, "train", spec(16), train=False)[0]
    assert float(image[0, 0, 0]) == pytest.approx(-1.0, abs=0.02) and float(image[0, 0, -1]) == pytest.approx(1.0, abs=0.02)


# --- every file read has a deadline -------------------------------------------------------------------------


def test_an_image_whose_read_never_finishes_costs_the_deadline_and_is_skipped_or_named(tmp_path):
    root = tmp_path / "images"
    for split in ("train", "val", "test"):
        save_image(root / split / "a" / "0.png")
    make.fifo(root / "train" / "a" / "1.png")
    data = {"dataset": "imagefolder", "root": str(root), "decode_timeout": 0.5, "augment": "none"}
    skipping = build_dataset(bind(DataConfig, {**data, "on_bad_sample": "skip"}, "t"), "train", spec(16), train=False)
    start = time.perf_counter()
    item = skipping[1]
    assert time.perf_counter() - start < 3
    assert isinstance(item, SkippedSample) and item.reason == "reading did not finish within 0.5 s (data.decode_timeout)"
    strict = build_dataset(bind(DataConfig, data, "t"), "train", spec(16), train=False)
    with pytest.raises(SttoolError, match=r"1\.png: reading did not finish within 0\.5 s"):
        strict[1]


def test_sigterm_during_a_hung_read_still_stops_training(tmp_path, monkeypatch):
    # the read of a FIFO never returns; a SIGTERM that arrives meanwhile still stops the run, within the deadline
    import threading

    import sttool.data.image_dataset as image_dataset

    root = tmp_path / "images"
    for split in ("train", "val", "test"):
        for label in ("a", "b"):
            for index in range(4):
                save_image(root / split / label / f"{index}.png", value=60 if label == "a" else 180, size=32)
    fifo = make.fifo(root / "train" / "a" / "9.png")
    real_read = image_dataset.read_bytes

    def read_then_signal(path, timeout):
        if Path(path) == fifo:
            threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGTERM)).start()
        return real_read(path, timeout)

    monkeypatch.setattr(image_dataset, "read_bytes", read_then_signal)
    data = tiny_recipe_data(tmp_path / "run", epochs=2, batch_size=3)
    data["data"] = {"dataset": "imagefolder", "root": str(root), "num_workers": 0, "decode_timeout": 2.0,
                    "on_bad_sample": "skip", "augment": "none"}
    start = time.perf_counter()
    results = finetune(bind_recipe(data, "t:"))
    assert results["status"] == "interrupted" and time.perf_counter() - start < 30
    assert RunDir(tmp_path / "run").last.is_file()


def test_visualize_gives_up_on_a_video_that_hangs(tmp_path):
    video = make.fifo(tmp_path / "clip.mp4")
    start = time.perf_counter()
    result = runner.invoke(app, ["visualize", "kept-tokens", str(video), "--backbone", "vit_micro_patch8_64",
                                 "--weights", "none", "--frames", "2", "--timeout", "1", "--out", str(tmp_path / "out")])
    line = one_line_error(result)
    assert str(video) in line and time.perf_counter() - start < 30


def test_a_symlink_loop_and_a_truncated_file_are_named_bad_samples(tmp_path):
    root = tmp_path / "images"
    for split in ("train", "val", "test"):
        save_image(root / split / "a" / "0.png")
    make.symlink_loop(root / "train" / "a" / "1.png")
    make.truncated_png(root / "train" / "a" / "2.png")
    config = bind(DataConfig, {"dataset": "imagefolder", "root": str(root), "on_bad_sample": "skip", "augment": "none"}, "t")
    dataset = build_dataset(config, "train", spec(16), train=False)
    reasons = {Path(dataset[i].path).name: dataset[i].reason for i in range(1, 3)}
    assert "symbolic links" in reasons["1.png"] and reasons["2.png"].startswith("cannot decode the image")


# --- logs a crash tore are read tolerantly and repaired on resume ------------------------------------------


def test_a_torn_metrics_line_is_repaired_on_resume(tmp_path):
    run = tmp_path / "run"
    fired = []

    def sigterm_once(index):
        if not fired and len(reads) > 96 + 40:
            fired.append(index)
            os.kill(os.getpid(), signal.SIGTERM)
        reads.append(index)

    reads: list[int] = []
    assert finetune(recipe(run), datasets=datasets(hook=sigterm_once))["status"] == "interrupted"
    torn = make.tear_last_line(run / "metrics.jsonl")
    assert RunDir(run).records() == []  # epoch 1's line, the only one, is torn: read without an error
    results = finetune(recipe(run), resume=True, datasets=datasets())
    text = (run / "metrics.jsonl").read_text()
    assert torn not in text.splitlines() and results["test"]["top1"] > 0
    records = [json.loads(line) for line in text.splitlines()]
    assert [r["event"] for r in records] == ["resume", "train", "train", "test"]


# --- a full disk or a denied write is one line naming the path ----------------------------------------------


def test_a_full_disk_during_a_checkpoint_names_the_file(tmp_path, monkeypatch):
    import sttool.runs.checkpoint as checkpoint

    def full(tensors, path, metadata=None):
        raise OSError(errno.ENOSPC, "No space left on device", path)

    monkeypatch.setattr(checkpoint, "save_file", full)
    run = tmp_path / "run"
    with pytest.raises(SttoolError, match=r"cannot write .*best\.safetensors: the disk is full; free space"):
        finetune(recipe(run, epochs=1), datasets=datasets())
    assert not list((run / "checkpoints").glob(".*"))  # no half-written temporary file is left


def test_a_metrics_file_on_a_full_disk_is_one_line(tmp_path):
    run = RunDir(tmp_path / "run")
    (tmp_path / "run").mkdir()
    os.symlink("/dev/full", tmp_path / "run" / "metrics.jsonl")  # every write to /dev/full fails with ENOSPC
    with pytest.raises(SttoolError, match="cannot write .*metrics.jsonl: the disk is full"):
        run.log({"event": "train"})


def test_too_little_free_space_is_refused_before_training(tmp_path, monkeypatch):
    import shutil as shutil_module

    monkeypatch.setattr(shutil_module, "disk_usage", lambda path: shutil_module._ntuple_diskusage(10**9, 10**9 - 1000, 1000))
    with pytest.raises(SttoolError, match=r"0\.0 MB free on its disk, but the run's checkpoints need about"):
        finetune(recipe(tmp_path / "run", epochs=1), datasets=datasets())
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_an_interrupted_write_leaves_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "results.json"
    target.write_text("old")

    def denied(src, dst):
        raise PermissionError(errno.EACCES, "Permission denied", str(dst))

    monkeypatch.setattr(os, "replace", denied)
    with pytest.raises(SttoolError, match="cannot write .*results.json: permission denied"):
        write_text(target, "new")
    monkeypatch.undo()
    assert target.read_text() == "old" and not list(tmp_path.glob(".*.tmp"))


# --- every sample left out is counted and named -------------------------------------------------------------


def test_out_of_range_labels_under_skip_are_counted_and_named(tmp_path):
    make_vtab(tmp_path / "vtab", "tiny", {"train800": 16, "val200": 8, "test": 8}, num_classes=2)
    with open(tmp_path / "vtab" / "tiny" / "train800.txt", "a") as handle:
        handle.write("images/0000.png 99\n")
    data = tiny_recipe_data(tmp_path / "run", epochs=1, batch_size=8)
    data["data"] = {"dataset": "vtab", "root": str(tmp_path / "vtab"), "task": "tiny", "num_classes": 2, "num_workers": 0,
                    "on_bad_sample": "skip", "augment": "resize"}
    finetune(bind_recipe(data, "t:"))
    records = RunDir(tmp_path / "run").records()
    rejected = [r for r in records if r["event"] == "rejected"]
    assert rejected == [{**rejected[0], "split": "train", "count": 1}]
    assert "label 99 is outside 0..1" in rejected[0]["samples"][0] and "0000.png" in rejected[0]["samples"][0]


# --- list files from other tools ----------------------------------------------------------------------------


def test_list_files_with_a_bom_crlf_or_tabs_read_as_plain_ones(tmp_path):
    lines = ["a b/x.png 1", "c.png\t2", "d.png 0"]
    plain = read_list(make.list_file(tmp_path / "plain.txt", lines))
    for name, options in (("bom.txt", {"bom": True}), ("crlf.txt", {"newline": "\r\n"}), ("both.txt", {"bom": True, "newline": "\r\n"})):
        other = read_list(make.list_file(tmp_path / name, lines, **options))
        assert [(e.path, e.label, e.line) for e in other] == [(e.path, e.label, e.line) for e in plain]
    assert plain[0].path == str(tmp_path / "a b/x.png")


@pytest.mark.parametrize("line,number,message", [
    ("x.png ３", 2, "label in digits 0-9"),
    ("x.png 1_0", 2, "label in digits 0-9"),
    ("x.png ²", 2, "label in digits 0-9"),
])
def test_list_lines_with_unusual_digits_are_refused_with_their_number(tmp_path, line, number, message):
    path = make.list_file(tmp_path / "list.txt", ["ok.png 1", line])
    with pytest.raises(SttoolError, match=rf"list.txt line {number}: expected .*{message}"):
        read_list(path)


def test_a_list_in_another_encoding_is_refused_with_the_line(tmp_path):
    path = make.list_file(tmp_path / "list.txt", ["ok.png 1", "caf\u00e9.png 0"], encoding="latin-1")
    with pytest.raises(SttoolError, match="list.txt line 2: not UTF-8 text"):
        read_list(path)


# --- a refused command changes nothing on disk ---------------------------------------------------------------


def test_a_refused_resume_changes_nothing_in_the_run(tmp_path):
    run = tmp_path / "run"
    finetune(recipe(run, epochs=1), datasets=datasets())
    before = {k: v for k, v in make.folder_digest(run).items() if k != LOCK_FILE}
    changed = bind_recipe({**tiny_recipe_data(run, epochs=1), "optim": {"lr": 1e-2}}, "test:")
    with pytest.raises(SttoolError, match="differs from the run's at optim.lr"):
        finetune(changed, resume=True, datasets=datasets())
    assert {k: v for k, v in make.folder_digest(run).items() if k != LOCK_FILE} == before


def test_a_refused_new_run_leaves_no_folder(tmp_path, image_run):
    path, run = image_run
    result = runner.invoke(app, ["finetune", str(path), "--resume"])
    assert "does not exist; start the run without --resume" in one_line_error(result)
    assert not run.exists()


# --- a resumed epoch's loss covers every step ----------------------------------------------------------------


def test_the_interrupted_epochs_loss_averages_every_step_after_a_resume(tmp_path):
    finetune(recipe(tmp_path / "a"), datasets=datasets())
    fired = []

    def sigterm_once(index):
        if not fired and len(reads) > 96 + 40:
            fired.append(index)
            os.kill(os.getpid(), signal.SIGTERM)
        reads.append(index)

    reads: list[int] = []
    finetune(recipe(tmp_path / "b"), datasets=datasets(hook=sigterm_once))
    finetune(recipe(tmp_path / "b"), resume=True, datasets=datasets())
    losses = [{r["epoch"]: r["loss"] for r in RunDir(tmp_path / name).records() if r["event"] == "train"} for name in "ab"]
    assert losses[0].keys() == losses[1].keys() == {1, 2, 3}
    for epoch in (1, 2, 3):
        assert losses[1][epoch] == pytest.approx(losses[0][epoch], rel=1e-6), epoch


# --- signals at every stage -----------------------------------------------------------------------------------


def test_ctrl_c_while_preparing_data_is_one_line(tmp_path, monkeypatch):
    import sttool.data.synthetic.generate as generate

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(generate, "write_image_set", interrupted)
    result = runner.invoke(app, ["prepare", "synthetic", "--out", str(tmp_path / "s")])
    assert result.exit_code == 130 and "stopped: interrupted" in result.output and "Traceback" not in result.output
