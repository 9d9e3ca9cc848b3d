"""A tiny trained run with exits: profile it (exits, throughput, checkpoint), plot its exits and its
accuracy against GFLOPs, picture its kept tokens, and refuse folders that lack what a command needs."""

import json
import shutil
import sys
from dataclasses import replace

import pytest
from PIL import Image
from typer.testing import CliRunner

from sttool.cli.main import app
from sttool.engine import finetune
from sttool.engine.evaluate import evaluate_checkpoint
from sttool.profiling.flops import gflops_report
from sttool.runs.load import load_run
from sttool.runs.recipe import bind_recipe
from tests.helpers import TemplateImages, tiny_recipe_data

runner = CliRunner()


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def run(tmp_path_factory, synthetic_root, one_thread):
    """test_vit with exits after blocks 2 and 4, one epoch; its recipe's data is the synthetic set (10 classes)."""
    out = tmp_path_factory.mktemp("runs") / "tiny"
    data = tiny_recipe_data(out, epochs=1)
    data["model"]["exit_layers"] = [2, 4]
    data["data"] = {"dataset": "synthetic_images", "root": str(synthetic_root), "num_workers": 0}
    data["exits"] = {"sweep_points": 5}
    datasets = {"train": TemplateImages(32, classes=10), "val": TemplateImages(16, classes=10, seed=1),
                "test": TemplateImages(16, classes=10, seed=2)}
    finetune(bind_recipe(data, "test:"), datasets=datasets)
    return out


def cli(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def is_png(path, least_bytes: int = 5000) -> bool:
    with Image.open(path) as image:
        image.verify()
        ok = image.format == "PNG" and min(image.size) >= 200
    return ok and path.stat().st_size > least_bytes


def test_profile_exits_gives_the_expected_gflops_at_the_operating_point(run):
    result = cli("profile", run, "--exits", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    exits = json.loads((run / "exits.json").read_text())
    point = exits["operating_point"]
    by_hand = sum(f * c for f, c in zip(point["test"]["exit_fractions"], exits["cost_to_exit_gflops"], strict=True))
    assert report["exits"]["expected_gflops"] == pytest.approx(by_hand)
    assert report["exits"]["expected_ratio"] == pytest.approx(by_hand / exits["no_exit_gflops"])
    assert report["exits"]["split"] == "test" and report["exits"]["exit_layers"] == [2, 4]
    assert report["source"]["kind"] == "run" and report["source"]["checkpoint"].endswith("best.safetensors")
    table = cli("profile", run, "--exits")
    assert table.exit_code == 0, table.output
    assert "tuned run" in table.output and "expected GFLOPs at the operating point (test)" in table.output


def test_profile_a_checkpoint_times_the_tuned_model(run):
    checkpoint = run / "checkpoints" / "last.safetensors"
    result = cli("profile", checkpoint, "--throughput", "--batch-size", "2", "--rounds", "1", "--warmup", "0", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["source"]["checkpoint"] == str(checkpoint) and report["source"]["run_dir"] == str(run)
    assert set(report["throughput"]["models"]) == {"dense", "sparse_tuning"}
    assert report["model"]["exit_layers"] == [2, 4] and report["model"]["num_classes"] == 10
    refused = cli("profile", run, "--keep-rate", "0.5")
    assert refused.exit_code == 2 and "is a tuned run, profiled as trained" in refused.output


def test_visualize_exits_writes_a_plot(run, tmp_path):
    result = cli("visualize", "exits", run, "--out", tmp_path, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["png"] == str(tmp_path / "exits.png") and is_png(tmp_path / "exits.png")
    assert report["operating_point"]["test"]["exit_fractions"] == json.loads((run / "exits.json").read_text())["operating_point"]["test"]["exit_fractions"]
    default = cli("visualize", "exits", run)
    assert default.exit_code == 0 and is_png(run / "plots" / "exits.png")


def test_tradeoff_sweeps_keep_rates_against_independent_counts(run, tmp_path):
    result = cli("visualize", "tradeoff", run, "--keep-rates", "0.5,1", "--out", tmp_path, "--device", "cpu", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert is_png(tmp_path / "tradeoff.png")
    curve = {p["keep_rate"]: p for p in report["keep_rate_curve"]}
    assert sorted(curve) == [0.5, 0.7, 1.0] and report["tuned_keep_rate"] == 0.7  # the run's own rate added
    _, recipe, _ = load_run(run)
    for rate, point in curve.items():
        assert point["gflops"] == pytest.approx(gflops_report(replace(recipe.model, keep_rate=rate))["gflops"])
    assert curve[0.5]["gflops"] < curve[1.0]["gflops"]
    assert curve[0.7]["top1"] == pytest.approx(evaluate_checkpoint(run, "test", throughput=False)["top1"])
    assert len(report["exit_curve"]) == 5


def test_kept_tokens_with_a_run_reports_the_object_share(run, synthetic_root, tmp_path):
    images = sorted((synthetic_root / "images" / "test").rglob("*.png"))[:2]
    result = cli("visualize", "kept-tokens", *images, "--run", run, "--out", tmp_path)
    assert result.exit_code == 0, result.output
    assert len(list(tmp_path.glob("*_kept_tokens.png"))) == 2
    assert "share of kept patches on the object" in result.output and "mean of 2" in result.output
    refused = cli("visualize", "kept-tokens", *images, "--run", run, "--keep-rate", "0.5")
    assert refused.exit_code == 2 and "a run brings its own model" in refused.output


def test_run_folders_missing_what_a_command_needs_are_one_line_errors(run, tmp_path):
    bare = tmp_path / "no_exits"
    shutil.copytree(run, bare, ignore=shutil.ignore_patterns("exits.json"))
    for args in (["visualize", "exits", bare], ["profile", bare, "--exits"]):
        result = cli(*args)
        assert result.exit_code == 2, result.output
        assert f"{bare / 'exits.json'} not found" in result.output.replace("\n", "")
        assert "Traceback" not in result.output
    empty = tmp_path / "empty"
    empty.mkdir()
    result = cli("visualize", "tradeoff", empty)
    assert result.exit_code == 2 and "holds no checkpoint" in result.output
    result = cli("visualize", "kept-tokens", tmp_path / "x.png", "--run", empty)
    assert result.exit_code == 2 and "x.png: file not found" in result.output


def test_plots_without_matplotlib_say_how_to_install_it(run, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    for command in ("exits", "tradeoff"):
        result = cli("visualize", command, run)
        assert result.exit_code == 2, result.output
        assert "pip install 'sttool[plots]'" in result.output
