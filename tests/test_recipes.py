"""Every shipped recipe loads, builds its model and runs one training step on tiny generated data."""

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sttool.cli.main import app
from sttool.config.compose import read_recipe_data
from sttool.engine import finetune
from sttool.errors import SttoolError
from sttool.runs.recipe import load_recipe

REPO = Path(__file__).resolve().parents[1]
RECIPE_DIR = REPO / "recipes"  # not the working folder: run from anywhere, the same recipes are collected
RECIPES = sorted(p for p in RECIPE_DIR.rglob("*.yaml") if not p.name.startswith("_") and p.name != "suite.yaml")
runner = CliRunner()


@pytest.fixture(autouse=True)
def _in_the_repo(monkeypatch):
    monkeypatch.chdir(REPO)  # the commands below name recipes/... as a user in a checkout does


def tiny_overrides(recipe_path: Path, root: Path, out: Path) -> list[str]:
    """Keep the recipe's method and training settings; swap in a 12-block tiny ViT and tiny data."""
    data = read_recipe_data(recipe_path)
    video = bool(data.get("model", {}).get("num_frames"))
    overrides = [
        "model.backbone=vit_tiny_patch16_224", "model.weights=none", "model.img_size=32", "model.num_classes=null",
        f"data.dataset={'synthetic_videos' if video else 'synthetic_images'}", f"data.root={root}",
        "data.num_workers=0", "train.batch_size=4", "train.eval_batch_size=4", "train.epochs=1",
        "train.max_steps_per_epoch=1", "train.device=cpu", f"output_dir={out}",
    ]
    for key in ("task", "train_split", "val_split", "test_split"):
        if key in data.get("data", {}):
            overrides.append(f"~data.{key}")
    return overrides


def test_the_paper_experiments_are_all_shipped():
    names = {p.relative_to(RECIPE_DIR).as_posix() for p in RECIPES}
    assert {"cifar100.yaml", "svhn.yaml", "food101.yaml", "k400.yaml", "ssv2.yaml"} <= names
    assert sum(n.startswith("vtab/") for n in names) == 19
    assert {f"baselines/cifar100-{m}.yaml" for m in ("full", "linear", "adaptformer", "lora", "evit-adaptformer")} <= names


@pytest.mark.parametrize("path", RECIPES, ids=[p.relative_to(RECIPE_DIR).as_posix() for p in RECIPES])
def test_recipe_trains_one_step(path, synthetic_root, tmp_path):
    recipe = load_recipe(path, tiny_overrides(path, synthetic_root, tmp_path / "run"))
    original = load_recipe(path)
    assert (recipe.model.method, recipe.model.keep_rate, recipe.optim, recipe.train.mixup) == (
        original.model.method, original.model.keep_rate, original.optim, original.train.mixup)
    results = finetune(recipe)
    assert results["test"]["num_samples"] > 0
    assert (tmp_path / "run" / "checkpoints" / "last.safetensors").is_file()


def test_print_config_applies_overrides_and_types_numbers():
    result = runner.invoke(app, ["finetune", "recipes/cifar100.yaml", "optim.lr=1e-4", "--set", "train.epochs=3",
                                 "--print-config"])
    assert result.exit_code == 0, result.output
    assert "lr: 0.0001" in result.output and "epochs: 3" in result.output and "extends" not in result.output


@pytest.mark.parametrize("override,message", [
    ("optim.lrr=1", "unknown key 'lrr'; did you mean 'lr'"),
    ("model.method=sparse_tunin", "did you mean 'sparse_tuning'"),
    ("train.epochs=many", "train.epochs: expected an integer"),
    ("data.augment=flip", "data.augment: 'flip' is not allowed"),
])
def test_bad_overrides_are_one_line_errors(override, message):
    result = runner.invoke(app, ["finetune", "recipes/cifar100.yaml", override, "--print-config"])
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output


def test_missing_dataset_root_names_it(tmp_path):
    recipe = load_recipe("recipes/cifar100.yaml", [f"data.root={tmp_path / 'nowhere'}", "model.weights=none",
                                                   "model.backbone=vit_tiny_patch16_224", "model.img_size=32",
                                                   f"output_dir={tmp_path / 'run'}"])
    with pytest.raises(SttoolError, match="nowhere"):
        finetune(recipe)


def test_finetune_then_evaluate_on_the_command_line(synthetic_root, tmp_path):
    args = ["finetune", "recipes/baselines/cifar100-adaptformer.yaml",
            *tiny_overrides(Path("recipes/cifar100.yaml"), synthetic_root, tmp_path / "run"), "train.epochs=2",
            "train.max_steps_per_epoch=3", "train.select=val"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "test top-1" in result.output
    import json

    results = json.loads((tmp_path / "run" / "results.json").read_text())
    evaluated = runner.invoke(app, ["evaluate", str(tmp_path / "run"), "--json", "--no-throughput"])
    assert evaluated.exit_code == 0, evaluated.output
    report = json.loads(evaluated.output)
    assert report["top1"] == results["test"]["top1"] and report["per_class"] == results["test"]["per_class"]
    table = runner.invoke(app, ["evaluate", str(tmp_path / "run")])
    assert table.exit_code == 0 and "per-class top-1" in table.output and "throughput" in table.output
    again = runner.invoke(app, args)
    assert again.exit_code == 2 and "--resume" in again.output


def test_the_collection_does_not_depend_on_the_working_folder(tmp_path):
    def collected(cwd: Path) -> int:
        result = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                                 str(Path(__file__))], cwd=cwd, capture_output=True, text=True, check=False)
        return int(result.stdout.strip().splitlines()[-1].split()[0])  # "N tests collected in ..."

    assert collected(tmp_path) == collected(REPO) > len(RECIPES) >= 36
