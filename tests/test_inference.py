"""Predict and export on a small trained run: outputs checked against the model's own forward."""

import csv
import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

from sttool.cli.main import app
from sttool.data.inputs import read_sample
from sttool.engine.inference import Predictor, export_model
from sttool.errors import SttoolError
from tests.data_helpers import save_image
from tests.helpers import tiny_recipe_data

runner = CliRunner()
CLASSES = ("cat", "dog", "emu")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A test_vit tuned one epoch on a 3-class image folder; returns (run folder, the folder of test images)."""
    root = tmp_path_factory.mktemp("predict")
    images = root / "images"
    for split in ("train", "val", "test"):
        for label, name in enumerate(CLASSES):
            for index in range(4):
                save_image(images / split / name / f"{index}.png", value=50 + 70 * label + index, size=32)
    data = tiny_recipe_data(root / "run", epochs=1, batch_size=6)
    data["data"] = {"dataset": "imagefolder", "root": str(images), "num_workers": 0, "augment": "none"}
    (root / "recipe.yaml").write_text(yaml.safe_dump(data))
    result = runner.invoke(app, ["finetune", str(root / "recipe.yaml")])
    assert result.exit_code == 0, result.output
    return root / "run", images / "test"


def test_predictions_are_the_models_own_softmax_with_the_runs_class_names(trained):
    run, test = trained
    predictor = Predictor.load(run, device="cpu")
    files = sorted(test.rglob("*.png"))
    report = predictor.predict(files, top_k=2, batch_size=5)
    assert [p.path for p in report.predictions] == [str(f) for f in files] and not report.bad
    with torch.no_grad():
        reference = predictor.model(torch.stack([read_sample(f, predictor.pre).inputs for f in files])).softmax(-1)
    for prediction, probs in zip(report.predictions, reference, strict=True):
        values, indices = probs.topk(2)
        assert [name for name, _ in prediction.top] == [CLASSES[int(i)] for i in indices]
        assert [v for _, v in prediction.top] == pytest.approx(values.tolist(), abs=1e-6)


def test_folders_and_list_files_expand_and_bad_files_are_counted(trained, tmp_path):
    run, test = trained
    (tmp_path / "broken.png").write_bytes(b"not an image")
    listing = tmp_path / "list.txt"
    listing.write_text(f"{test / 'cat' / '0.png'} 0\nbroken.png 1\nmissing.png 2\n")
    report = Predictor.load(run, device="cpu").predict([test / "dog", listing], top_k=1)
    assert len(report.predictions) == 5
    assert [(Path(p).name, r.split(";")[0]) for p, r in report.bad] == [("broken.png", "not an image PIL can identify"),
                                                                       ("missing.png", "file not found")]


def test_the_command_prints_json_and_csv_and_names_bad_files(trained, tmp_path):
    run, test = trained
    (tmp_path / "broken.png").write_bytes(b"nope")
    out_csv = tmp_path / "p.csv"
    result = runner.invoke(app, ["predict", str(run), str(test / "emu"), str(tmp_path / "broken.png"), "--top-k", "3",
                                 "--json", "--csv", str(out_csv), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert len(data["predictions"]) == 4 and [len(p["top"]) for p in data["predictions"]] == [3] * 4
    assert sum(t["probability"] for t in data["predictions"][0]["top"]) == pytest.approx(1.0, abs=1e-5)
    assert data["bad"] == [{"path": str(tmp_path / "broken.png"), "reason": data["bad"][0]["reason"]}]
    rows = list(csv.DictReader(out_csv.open()))
    assert len(rows) == 12 and rows[0]["rank"] == "1" and rows[0]["class"] in CLASSES
    text = runner.invoke(app, ["predict", str(run), str(test / "cat" / "1.png"), "--device", "cpu",
                               "--kept-tokens", str(tmp_path / "kept")])
    assert text.exit_code == 0 and f"{test / 'cat' / '1.png'}: " in text.output
    assert (tmp_path / "kept" / "1_kept_tokens.png").is_file()


def test_a_name_without_a_classifier_is_a_one_line_error():
    with pytest.raises(SttoolError, match="neither a run folder, a checkpoint, nor a timm model with a classifier"):
        Predictor.load("vit_micro_patch8_64", device="cpu")


@pytest.mark.parametrize("fmt,suffix", [("torch", ".pt2"), ("onnx", ".onnx")])
def test_export_has_a_dynamic_batch_and_matches_pytorch(trained, tmp_path, fmt, suffix):
    run, _ = trained
    out = tmp_path / f"model{suffix}"
    report = export_model(run, fmt, out)
    assert out.is_file() and report["check"]["max_abs_difference"] < 1e-4
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging file left behind
    shared = tmp_path / "shared"  # what a user copies elsewhere: the files the report names, and only those
    shared.mkdir()
    for name in report["files"]:
        shutil.copy(name, shared)
    out = shared / out.name
    predictor = Predictor.load(run, device="cpu")
    inputs = torch.randn(5, 3, 32, 32)
    with torch.no_grad():
        expected = predictor.model(inputs)
    if fmt == "torch":
        got = torch.export.load(str(out)).module()(inputs)
    else:
        import onnxruntime

        session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
        got = torch.from_numpy(session.run(None, {"inputs": inputs.numpy()})[0])
    assert got.shape == (5, 3) and torch.allclose(got, expected, atol=1e-4)


def test_the_adapter_folder_rebuilds_the_model_and_carries_a_model_card(trained, tmp_path):
    run, test = trained
    adapter = run / "adapter"
    config = json.loads((adapter / "config.json").read_text())
    assert config["format"] == "sttool-adapter/1" and config["class_names"] == list(CLASSES)
    assert config["backbone"] == "test_vit" and config["model"]["method"] == "sparse_tuning"
    card = (adapter / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: sttool\n") and "huggingface-cli upload" in card and "test top-1 |" in card
    files = sorted(test.rglob("*.png"))
    moved = tmp_path / "downloaded"  # as a Hub download leaves it: the folder alone, the run gone
    import shutil

    shutil.copytree(adapter, moved)
    from_folder = Predictor.load(moved, device="cpu").predict(files)
    from_run = Predictor.load(run, device="cpu").predict(files)
    assert [p.top for p in from_folder.predictions] == [p.top for p in from_run.predictions]
    evaluated = runner.invoke(app, ["evaluate", str(moved), "--no-throughput", "--json"])
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads(evaluated.stdout)["top1"] == json.loads((run / "results.json").read_text())["test"]["top1"]


def test_a_hub_id_offline_is_a_one_line_error_saying_how_to_give_a_folder(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(SttoolError, match=r"someone/shapes-adapter: not a folder here, and the Hugging Face Hub is offline .*"
                                          r"huggingface-cli download someone/shapes-adapter --local-dir DIR"):
        Predictor.load("someone/shapes-adapter", device="cpu")
    result = runner.invoke(app, ["predict", "someone/shapes-adapter", "x.png"])
    assert result.exit_code == 2 and "huggingface-cli download" in result.output
