"""Throughput and training-step measurement on the CPU with tiny models, and the profile command's
new options on a recipe (video inputs included)."""

import json

import pytest
import torch
from typer.testing import CliRunner

from sttool.cli.main import app
from sttool.models import patch_model
from sttool.profiling.timing import CPU_MEMORY_NOTE, compare_throughput, compare_training_steps
from sttool.runtime import resolve_precision
from tests.helpers import make_tiny_vit

runner = CliRunner()


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(method: str, **options) -> torch.nn.Module:
    return patch_model(make_tiny_vit(), method=method, **options)


def test_throughput_in_alternating_rounds_with_a_speedup_against_the_baseline():
    models = {"dense": make_tiny_vit(), "sparse": tiny("sparse_tuning", keep_rate=0.5)}
    results = compare_throughput(models, (3, 32, 32), batch_size=2, rounds=1, warmup=1, baseline="dense", dtype="bf16")
    assert results["dense"]["speedup"] == 1.0
    ran = resolve_precision("bf16", torch.device("cpu")).name  # bf16 where the CPU has it, fp32 otherwise
    for result in results.values():
        assert result["images_per_s"] == pytest.approx(2000 / result["ms_per_batch"])
        assert result["dtype"] == ran and result["device"] == "CPU, 1 threads"
    # one round: the median of per-round ratios is the ratio of the two times
    assert results["sparse"]["speedup"] == pytest.approx(results["dense"]["ms_per_batch"] / results["sparse"]["ms_per_batch"])


def test_training_step_on_the_cpu_is_timed_and_leaves_the_models_as_they_were():
    models = {"sparse_tuning": tiny("sparse_tuning"), "adaptformer": tiny("adaptformer"), "full": tiny("full")}
    before = {name: {k: v.clone() for k, v in m.state_dict().items()} for name, m in models.items()}
    report = compare_training_steps(models, (3, 32, 32), batch_size=2, num_classes=10, rounds=1, warmup=1,
                                    baseline="adaptformer")
    assert report["note"] == CPU_MEMORY_NOTE and report["baseline"] == "adaptformer"
    for name, result in report["models"].items():
        assert result["peak_memory_mib"] is None and result["memory_ratio"] is None
        assert result["time_ratio"] == pytest.approx(result["ms_per_step"] / report["models"]["adaptformer"]["ms_per_step"])
        after = models[name].state_dict()
        assert all(torch.equal(before[name][k], after[k]) for k in after), name  # lr 0, statistics restored
        assert not models[name].training
    assert report["models"]["adaptformer"]["time_ratio"] == 1.0


def test_training_step_of_a_model_with_exits_and_of_a_video_model_runs():
    models = {"exits": tiny("sparse_tuning", exit_layers=[4, 8]), "video": tiny("sparse_tuning", num_frames=2)}
    before = {name: {k: v.clone() for k, v in m.state_dict().items()} for name, m in models.items()}
    report = compare_training_steps({"exits": models["exits"]}, (3, 32, 32), 2, 10, rounds=1, warmup=0)
    assert set(report["models"]) == {"exits"} and "time_ratio" not in report["models"]["exits"]  # no baseline
    report = compare_training_steps({"video": models["video"]}, (3, 2, 32, 32), 2, 10, rounds=1, warmup=0)
    assert set(report["models"]) == {"video"}
    for name, model in models.items():  # the step really ran the model (time_embed, exits) and left it as it was
        assert all(torch.equal(before[name][k], v) for k, v in model.state_dict().items()), name


@pytest.mark.skipif(not torch.cuda.is_available(), reason="peak memory is read from CUDA's allocator")
def test_peak_memory_on_cuda_grows_with_what_is_trained():
    models = {"linear": tiny("linear"), "full": tiny("full")}
    report = compare_training_steps(models, (3, 32, 32), 8, 10, device="cuda", rounds=1, warmup=1, baseline="linear")
    peaks = {name: r["peak_memory_mib"] for name, r in report["models"].items()}
    assert 0 < peaks["linear"] < peaks["full"]  # gradients and AdamW state of every weight
    assert report["note"] is None


def test_profile_a_video_recipe_with_throughput_and_memory(tmp_path):
    recipe = tmp_path / "video.yaml"
    recipe.write_text("model:\n  backbone: vit_micro_patch8_64\n  img_size: 32\n  num_frames: 2\n")
    result = runner.invoke(app, ["profile", str(recipe), "--throughput", "--memory", "--batch-size", "2",
                                 "--rounds", "1", "--warmup", "0", "--device", "cpu", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    speed, memory = report["throughput"], report["memory"]
    assert speed["input_shape"] == [3, 2, 32, 32] and speed["unit"] == "clips/s" and speed["batch_size"] == 2
    assert set(speed["models"]) == {"dense", "sparse_tuning"} and speed["models"]["dense"]["speedup"] == 1.0
    assert list(memory["models"]) == ["sparse_tuning", "adaptformer", "full"] and memory["note"] == CPU_MEMORY_NOTE
    assert report["source"] == {"kind": "configuration", "weights": "random"}


def test_profile_tables_name_the_settings(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("model:\n  backbone: test_vit\n  img_size: 32\n  keep_layers: [2, 4]\n  method: adaptformer\n")
    result = runner.invoke(app, ["profile", str(recipe), "--throughput", "--memory", "--batch-size", "2",
                                 "--rounds", "1", "--warmup", "0", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "batch 2 x 3x32x32" in result.output and "dense backbone" in result.output
    assert "note: peak memory is measured on CUDA only" in result.output


@pytest.mark.parametrize("args,message", [
    (["--throughput", "--dtype", "fp64"], "--dtype: 'fp64' is not valid; valid: fp32, bf16, fp16"),
    (["--memory", "--batch-size", "1"], "--batch-size: 1 is too small"),
    (["--exits"], "--exits reads exits.json of a trained run"),
    (["--throughput", "--device", "tpu"], "--device: 'tpu' is not valid"),
])
def test_profile_bad_requests_are_one_line_errors(args, message):
    result = runner.invoke(app, ["profile", "--backbone", "test_vit", "--keep-layers", "2,4", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_profile_names_a_missing_recipe(tmp_path):
    result = runner.invoke(app, ["profile", str(tmp_path / "nothing.yaml")])
    assert result.exit_code == 2 and "nothing.yaml: no recipe file, run folder or checkpoint there" in result.output
