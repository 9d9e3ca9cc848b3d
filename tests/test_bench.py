"""sttool bench: the VTAB-1K protocol per cell, resuming without training twice, both means, the CLI."""

import csv
import json
import statistics
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from sttool.bench import bench, load_suite
from sttool.bench.report import summary_table
from sttool.bench.suite import Suite
from sttool.cli.main import app
from sttool.data.vtab import VTAB_CLASSES
from sttool.errors import SttoolError
from tests.data_helpers import make_vtab
from tests.helpers import tiny_recipe_data

REPO = Path(__file__).resolve().parents[1]
COUNTS = {"train800": 16, "val200": 8, "test": 8}


def _suite(tmp_path: Path, methods: dict | None = None) -> Path:
    """A two-task suite (eurosat, 10 classes; patch_camelyon, 2) on timm's test_vit, with its tiny data."""
    root = tmp_path / "data"
    make_vtab(root, "eurosat", COUNTS, num_classes=10)
    make_vtab(root, "patch_camelyon", COUNTS, num_classes=2)
    recipe = tiny_recipe_data("unused", epochs=2)
    recipe["data"] = {"dataset": "vtab", "root": str(root), "task": "eurosat", "augment": "resize", "num_workers": 0}
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(recipe))
    suite = {
        "name": "tiny", "root": str(root), "recipe": "tiny.yaml",
        "groups": {"natural": ["eurosat"], "specialized": ["patch_camelyon"]},
        "methods": methods or {
            "linear": {"overrides": ["model.method=linear", "model.keep_rate=1.0"], "value": 1e-2, "grid": [1e-3, 3e-2]},
            "sparse_tuning": {"overrides": ["model.keep_rate=0.5"], "value": 3e-3, "grid": [1e-3, 3e-3]},
        },
        "quick": {"tasks": ["eurosat"], "overrides": ["train.epochs=1"]},
    }
    (tmp_path / "suite.yaml").write_text(yaml.safe_dump(suite))
    return tmp_path / "suite.yaml"


def test_bench_follows_the_protocol_and_a_second_call_trains_nothing(tmp_path, monkeypatch):
    suite = load_suite(str(_suite(tmp_path)))
    out = tmp_path / "out"
    report = bench(suite, out, seeds=[0])
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert [(r["task"], r["method"]) for r in rows] == [("eurosat", "linear"), ("eurosat", "sparse_tuning"),
                                                         ("patch_camelyon", "linear"), ("patch_camelyon", "sparse_tuning")]
    for row in report["rows"]:
        folder = out / "cells" / row["task"] / row["method"] / "seed0"
        grid = {}
        for value in suite.methods[row["method"]].grid:
            results = json.loads((folder / f"lr-{value}" / "results.json").read_text())
            assert "test" not in results  # the grid never sees the test split
            grid[value] = results["best"]["top1"]
            assert results["best"]["epoch"] == 2  # validated after the last epoch only
        assert row["chosen"] == max(grid, key=lambda v: (grid[v], -list(grid).index(v)))  # first of equals
        final = json.loads((folder / "final" / "results.json").read_text())
        final_recipe = yaml.safe_load((folder / "final" / "recipe.yaml").read_text())
        assert final_recipe["data"]["train_split"] == "train800val200" and final_recipe["optim"]["lr"] == float(row["chosen"])
        assert final["best"] is None and row["top1"] == final["test"]["top1"]
    ratios = {r["method"]: float(r["gflops_ratio"]) for r in rows}
    assert ratios["linear"] == pytest.approx(1.0) and ratios["sparse_tuning"] < 1.0
    summary = (out / "summary.md").read_text()
    assert "mean of group means" in summary and "mean of 2 tasks" in summary

    def no_training(*args, **kwargs):
        raise AssertionError("a finished cell was trained again")

    monkeypatch.setattr("sttool.bench.protocol.finetune", no_training)
    (out / "cells" / "eurosat" / "linear" / "seed0.json").unlink()  # killed after its runs, before its row
    again = bench(suite, out, seeds=[0])
    assert [r["top1"] for r in again["rows"]] == [r["top1"] for r in report["rows"]]
    assert again["rows"][0]["train_seconds"] > 0  # the reused run's own time, from its files


def test_quick_and_fixed_grid_run_one_training_per_cell(tmp_path):
    suite = load_suite(str(_suite(tmp_path)))
    out = tmp_path / "quick"
    report = bench(suite, out, methods=["linear"], seeds=[0, 1], quick=True)  # quick: the fixed value
    assert [(r["task"], r["seed"], r["chosen"]) for r in report["rows"]] == [("eurosat", 0, "0.01"), ("eurosat", 1, "0.01")]
    assert sorted(p.name for p in (out / "cells" / "eurosat" / "linear" / "seed0").iterdir()) == ["final"]
    assert report["rows"][0]["epochs"] == 1


def test_parallel_jobs_give_the_rows_of_serial_runs(tmp_path):
    suite = load_suite(str(_suite(tmp_path)))
    serial = bench(suite, tmp_path / "serial", methods=["linear"], grid="none", quick=True)
    parallel = bench(suite, tmp_path / "parallel", methods=["linear", "sparse_tuning"], grid="none", quick=True, jobs=2)
    assert parallel["rows"][0]["top1"] == serial["rows"][0]["top1"]
    assert [r["method"] for r in parallel["rows"]] == ["linear", "sparse_tuning"]


def test_summary_means_match_a_hand_count():
    suite = Suite("hand", Path("suite.yaml"), "data", None, "optim.lr",
                  {"natural": ("a", "b"), "structured": ("c",)}, {}, (), (), ())
    top1 = {("a", 0): 50.0, ("b", 0): 70.0, ("c", 0): 30.0, ("a", 1): 60.0, ("b", 1): 80.0, ("c", 1): 10.0}
    rows = [{"method": "m", "task": t, "seed": s, "top1": v, "gflops_ratio": 0.5, "trainable_params": 2e5} for (t, s), v in top1.items()]
    table = summary_table(rows, suite, ["m"], ["a", "b", "c"])["m"]
    assert table["natural mean"] == [60.0, 70.0]
    assert table["mean of group means"] == [(60 + 30) / 2, (70 + 10) / 2]  # 45, 40
    assert table["mean of 3 tasks"] == [50.0, 50.0] and table["trainable (M)"] == [0.2]
    assert statistics.stdev(table["mean of group means"]) == pytest.approx(3.5355, abs=1e-4)


def test_the_vtab_suite_covers_the_19_tasks_with_their_recipes():
    suite = load_suite(str(REPO / "recipes" / "vtab" / "suite.yaml"))
    assert sorted(suite.tasks) == sorted(VTAB_CLASSES)
    assert {g: len(t) for g, t in suite.groups.items()} == {"natural": 7, "specialized": 4, "structured": 8}
    assert all(suite.recipe_for(task).name == f"{task}.yaml" for task in suite.tasks)


def test_bench_vtab_runs_on_a_tiny_folder_in_the_vtab_1k_layout(tmp_path, monkeypatch):
    """The real VTAB-1K suite, its per-task recipe, on a generated svhn folder and a tiny backbone."""
    make_vtab(tmp_path / "vtab-1k", "svhn", COUNTS, num_classes=10)
    monkeypatch.chdir(REPO)
    result = CliRunner().invoke(app, ["bench", "vtab", "--root", str(tmp_path / "vtab-1k"), "--tasks", "svhn",
                                      "--methods", "sparse_tuning", "--grid", "none", "--out", str(tmp_path / "out"),
                                      "model.backbone=test_vit", "model.weights=null", "model.img_size=32",
                                      "train.epochs=1", "optim.warmup_epochs=0",
                                      "train.batch_size=8", "train.precision=fp32", "train.device=cpu",
                                      "model.keep_layers=[2,4]", "data.num_workers=0"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader((tmp_path / "out" / "results.csv").open()))
    assert [(r["task"], r["group"], r["method"]) for r in rows] == [("svhn", "natural", "sparse_tuning")]
    final = yaml.safe_load((tmp_path / "out" / "cells" / "svhn" / "sparse_tuning" / "seed0" / "final" / "recipe.yaml").read_text())
    assert final["data"]["task"] == "svhn" and final["train"]["epochs"] == 1 and final["optim"]["lr"] == 1e-3


def test_bench_refuses_unknown_names_in_one_line(tmp_path):
    suite = load_suite(str(_suite(tmp_path)))
    with pytest.raises(SttoolError, match="'sparse_tunin' is not one of the tiny methods; did you mean 'sparse_tuning'"):
        bench(suite, tmp_path / "out", methods=["sparse_tunin"])
    with pytest.raises(SttoolError, match="--grid 'model.bottleneck=8,16': the tiny suite searches optim.lr"):
        bench(suite, tmp_path / "out", grid="model.bottleneck=8,16")
    assert not (tmp_path / "out").exists()  # a refused command changes nothing
    broken = yaml.safe_load((tmp_path / "suite.yaml").read_text())
    broken["methods"]["linear"]["grids"] = [1e-3]
    (tmp_path / "suite.yaml").write_text(yaml.safe_dump(broken))
    with pytest.raises(SttoolError, match=r"methods.linear.grids: unknown key; did you mean 'grid'"):
        load_suite(str(tmp_path / "suite.yaml"))
    with pytest.raises(SttoolError, match="--root .*nowhere: no such folder; give the folder of task folders"):
        bench(suite, tmp_path / "out", root=str(tmp_path / "nowhere"))
    result = CliRunner().invoke(app, ["bench", "no-such-suite"])
    assert result.exit_code != 0 and "suite 'no-such-suite': no such file" in result.output


@pytest.mark.parametrize("name", ["micro-vtab", "transfer"])
def test_the_shipped_suites_name_real_tasks_and_valid_method_overrides(name):
    from sttool.data.synthetic.micro_vtab import MICRO_VTAB
    from sttool.data.transfer import TRANSFER_TASKS
    from sttool.runs.recipe import load_recipe

    suite = load_suite(str(REPO / "recipes" / name.replace("-", "_") / "suite.yaml"))
    assert set(suite.tasks) == set(MICRO_VTAB if name == "micro-vtab" else TRANSFER_TASKS)
    if name == "micro-vtab":
        assert {g: set(t) for g, t in suite.groups.items()} == {
            g: {t for t, row in MICRO_VTAB.items() if row.group == g} for g in ("natural", "specialized", "structured")}
    for method in suite.methods.values():
        recipe = load_recipe(suite.recipe_for(suite.tasks[0]), [*method.overrides, f"optim.lr={method.value}", "data.num_classes=10"])
        assert recipe.optim.lr == float(method.value) and all(float(v) > 0 for v in method.grid)


def test_each_worker_takes_a_gpu_of_its_own(monkeypatch):
    import multiprocessing
    import os

    from sttool.bench.run import _init_worker

    queue = multiprocessing.get_context("spawn").Queue()
    for index in (0, 1):
        queue.put(index)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    import torch

    threads, seen = torch.get_num_threads(), []
    try:
        for _ in range(2):
            _init_worker(1, queue)
            seen.append(os.environ["CUDA_VISIBLE_DEVICES"])
    finally:
        torch.set_num_threads(threads)
    assert seen == ["0", "1"]
