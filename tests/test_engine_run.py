"""Whole runs on CPU: checkpoints, selection on val, exact resume, NaN stop, and 2-process DDP = 1 process."""

import json
import os
import signal
import socket

import pytest
import torch
import torch.multiprocessing as mp

from sttool.engine import finetune
from sttool.engine.loop import NonFiniteLoss
from sttool.errors import SttoolError
from sttool.runs.checkpoint import read_checkpoint
from sttool.runs.recipe import bind_recipe
from tests.helpers import TemplateImages, tiny_recipe_data


def datasets(hook=None):
    return {"train": TemplateImages(96, hook=hook), "val": TemplateImages(32, seed=1), "test": TemplateImages(48, seed=2)}


def recipe(out_dir, **train):
    return bind_recipe(tiny_recipe_data(out_dir, **train), "test:")


def test_run_writes_its_folder_and_chooses_on_val(tmp_path):
    results = finetune(recipe(tmp_path / "run", mixup=0.8, cutmix=1.0), datasets=datasets())
    run = tmp_path / "run"
    for name in ("recipe.yaml", "env.json", "metrics.jsonl", "results.json", "checkpoints/best.safetensors",
                 "checkpoints/last.safetensors"):
        assert (run / name).is_file(), name
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    epochs = [r for r in records if r["event"] == "train"]
    assert [r["epoch"] for r in epochs] == [1, 2, 3] and all("val" in r for r in epochs)
    best_epoch = max(epochs, key=lambda r: r["val"]["top1"])["epoch"]  # first best on val, never on test
    assert results["best"]["epoch"] == best_epoch
    assert [r["event"] for r in records].count("test") == 1
    assert results["test"]["top1"] > 50  # 4 classes; learnable in a few steps
    env = json.loads((run / "env.json").read_text())
    assert env["torch"] == torch.__version__ and "git_commit" in env
    assert env["threads"] == torch.get_num_threads() and env["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    state, optim, meta = read_checkpoint(run / "checkpoints" / "best.safetensors")
    assert not optim and meta["kind"] == "best" and meta["recipe"]["name"] == "tiny"
    assert all(not k.startswith(("patch_embed", "pos_embed", "cls_token")) and ".mlp." not in k for k in state)


def test_an_existing_run_is_not_overwritten(tmp_path):
    finetune(recipe(tmp_path / "run", epochs=1), datasets=datasets())
    with pytest.raises(SttoolError, match="already holds a run; continue it with --resume"):
        finetune(recipe(tmp_path / "run", epochs=1), datasets=datasets())


def test_overwrite_replaces_the_run_and_nothing_else(tmp_path):
    first = finetune(recipe(tmp_path / "run", epochs=2), datasets=datasets())
    (tmp_path / "run" / "notes.txt").write_text("mine")
    old_adapter = (tmp_path / "run" / "adapter" / "config.json").read_text()
    for leftover in ("adapter/old.safetensors", "tensorboard/events.old", "mlruns/0/meta.yaml", "wandb/run-old/files"):
        (tmp_path / "run" / leftover).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "run" / leftover).write_text("from the earlier run")
    second = finetune(recipe(tmp_path / "run", epochs=1), datasets=datasets(), overwrite=True)
    for leftover in ("adapter/old.safetensors", "tensorboard", "mlruns", "wandb"):  # nothing of the old run serves on
        assert not (tmp_path / "run" / leftover).exists(), leftover
    assert (tmp_path / "run" / "adapter" / "config.json").read_text() != old_adapter
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records if r["event"] == "train"] == [1]
    assert first["best"]["epoch"] in (1, 2) and second["best"]["epoch"] == 1
    assert (tmp_path / "run" / "notes.txt").read_text() == "mine"
    with pytest.raises(SttoolError, match="give one of them"):
        finetune(recipe(tmp_path / "run", epochs=1), datasets=datasets(), resume=True, overwrite=True)


def test_resume_after_sigterm_mid_epoch_reaches_the_same_result(tmp_path):
    reference = finetune(recipe(tmp_path / "a"), datasets=datasets())
    fired = []

    def sigterm_once(index):  # a signal arrives while epoch 2 is being read
        if not fired and len(fired_reads) > 96 + 40:
            fired.append(index)
            os.kill(os.getpid(), signal.SIGTERM)
        fired_reads.append(index)

    fired_reads: list[int] = []
    interrupted = finetune(recipe(tmp_path / "b"), datasets=datasets(hook=sigterm_once))
    assert interrupted["status"] == "interrupted" and interrupted["epoch"] == 1 and 0 < interrupted["step"] < 6
    resumed = finetune(recipe(tmp_path / "b"), resume=True, datasets=datasets())
    assert resumed["test"] == reference["test"]
    assert resumed["best"] == reference["best"]
    a, _, _ = read_checkpoint(tmp_path / "a" / "checkpoints" / "last.safetensors")
    b, _, _ = read_checkpoint(tmp_path / "b" / "checkpoints" / "last.safetensors")
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)


def test_resume_refuses_another_recipe(tmp_path):
    finetune(recipe(tmp_path / "run", epochs=1), datasets=datasets())
    changed = bind_recipe({**tiny_recipe_data(tmp_path / "run", epochs=1), "optim": {"lr": 1e-2}}, "test:")
    with pytest.raises(SttoolError, match="differs from the run's at optim.lr"):
        finetune(changed, resume=True, datasets=datasets())


def test_resume_accepts_a_run_saved_before_a_key_was_added(tmp_path):
    """A run written by an older sttool lacks keys added since; at their defaults they are no difference."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    finetune(recipe(tmp_path / "run", epochs=2, max_steps_per_epoch=2), datasets=datasets())
    last = tmp_path / "run" / "checkpoints" / "last.safetensors"
    with safe_open(str(last), framework="pt") as handle:
        metadata = handle.metadata()
    saved = json.loads(metadata["sttool"])
    del saved["recipe"]["model"]["token_score"], saved["recipe"]["train"]["attention_labels"]
    saved["epoch"], saved["step"] = 1, 0  # as if stopped after epoch 1
    save_file(load_file(str(last)), str(last), metadata={**metadata, "sttool": json.dumps(saved)})
    resumed = finetune(recipe(tmp_path / "run", epochs=2, max_steps_per_epoch=2), resume=True, datasets=datasets())
    assert resumed["best"]["epoch"] in (1, 2)
    with pytest.raises(SttoolError, match="differs from the run's at model.token_score"):
        changed = tiny_recipe_data(tmp_path / "run", epochs=2, max_steps_per_epoch=2)
        changed["model"]["token_score"] = "mean"
        finetune(bind_recipe(changed, "test:"), resume=True, datasets=datasets())


class PoisonedAfter(TemplateImages):
    """Returns NaN images once ``reads`` samples have been read (that is, in epoch 2)."""

    reads = 0

    def __getitem__(self, index):
        PoisonedAfter.reads += 1
        image, label = super().__getitem__(index)
        return (image * float("nan") if PoisonedAfter.reads > 96 else image), label


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    PoisonedAfter.reads = 0
    data = {"train": PoisonedAfter(96), "val": TemplateImages(32, seed=1), "test": TemplateImages(48, seed=2)}
    with pytest.raises(NonFiniteLoss, match="NaN or infinite in epoch 2"):
        finetune(recipe(tmp_path / "run"), datasets=data)
    state, _, meta = read_checkpoint(tmp_path / "run" / "checkpoints" / "last.safetensors")
    assert meta["epoch"] == 1 and all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())


def test_class_count_must_match_the_data(tmp_path):
    data = tiny_recipe_data(tmp_path / "run")
    data["model"]["num_classes"] = 7
    with pytest.raises(SttoolError, match="model.num_classes is 7 but the data .* has 4 classes"):
        finetune(bind_recipe(data, "test:"), datasets=datasets())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ddp_worker(rank: int, world_size: int, port: int, out_dir: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    finetune(recipe(out_dir, epochs=2, accum_steps=2), datasets=datasets())


@pytest.mark.slow
def test_two_processes_reach_the_result_of_one(tmp_path):
    torch.set_num_threads(1)
    single = finetune(recipe(tmp_path / "one", epochs=2, accum_steps=2), datasets=datasets())
    mp.spawn(_ddp_worker, args=(2, _free_port(), str(tmp_path / "two")), nprocs=2, join=True)
    two = json.loads((tmp_path / "two" / "results.json").read_text())
    assert two["test"]["top1"] == single["test"]["top1"]
    assert two["test"]["loss"] == pytest.approx(single["test"]["loss"], rel=1e-4)
    a, _, _ = read_checkpoint(tmp_path / "one" / "checkpoints" / "last.safetensors")
    b, _, _ = read_checkpoint(tmp_path / "two" / "checkpoints" / "last.safetensors")
    assert set(a) == set(b)
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-5, rtol=1e-4)


def test_gpu_out_of_memory_suggests_accumulation(tmp_path, monkeypatch):
    from sttool.engine.loop import EpochRunner

    def out_of_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(EpochRunner, "_forward_backward", out_of_memory)
    with pytest.raises(SttoolError, match="out of memory with 16 samples per process.*train.accum_steps=2"):
        finetune(recipe(tmp_path / "run"), datasets=datasets())


def test_tensorboard_gets_the_numbers_of_metrics_jsonl_and_the_recipe(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    finetune(recipe(run, epochs=2, loggers=["tensorboard"]), datasets=datasets())
    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0, "tensors": 0})
    events.Reload()
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r["event"] == "train"]
    losses = [(e.step, e.value) for e in events.Scalars("train/loss")]
    assert losses == [(r["epoch"], pytest.approx(r["loss"], rel=1e-6)) for r in train]
    assert [e.value for e in events.Scalars("val/top1")] == [pytest.approx(r["val"]["top1"], rel=1e-6) for r in train]
    test = next(r for r in records if r["event"] == "test")
    assert events.Scalars("test/top1")[0].value == pytest.approx(test["top1"], rel=1e-6)
    recipe_text = events.Tensors("recipe/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "name: tiny" in recipe_text and "loggers:\n  - tensorboard" in recipe_text.replace("\n- tensorboard", "\n  - tensorboard")


def test_a_missing_tracker_is_refused_when_the_recipe_is_read(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    with pytest.raises(SttoolError, match=r"train.loggers: wandb is not installed: pip install 'sttool\[wandb\]'"):
        recipe(tmp_path / "run", loggers=["wandb"])
    assert not (tmp_path / "run").exists()
    with pytest.raises(SttoolError, match="'neptune' is not a tracker; valid: tensorboard, wandb, mlflow"):
        recipe(tmp_path / "run", loggers=["neptune"])
