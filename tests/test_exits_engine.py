"""Exit training and calibration: the loss by hand, MSDNet thresholds, a whole run with exits."""

import json

import pytest
import torch
import torch.nn.functional as F

from sttool.engine import finetune
from sttool.engine.exits import (
    MultiExitLoss,
    budgeted_thresholds,
    geometric_fractions,
    graph_smoothness,
    operating,
)
from sttool.models.exits import exit_assignment
from sttool.runs.recipe import ExitsConfig, bind_recipe
from tests.helpers import TemplateImages, tiny_recipe_data


@pytest.mark.parametrize("p", [0.3, 1.0, 1.7])
def test_calibrated_thresholds_reproduce_the_requested_fractions(p):
    torch.manual_seed(0)
    confidences = torch.rand(4, 1000)  # distinct values: no ties
    fractions = geometric_fractions(p, 4)
    thresholds = budgeted_thresholds(confidences, fractions)
    counts = torch.bincount(exit_assignment(confidences, thresholds), minlength=4).tolist()
    for k in range(3):
        assert counts[k] == int(1000 * fractions[k])
    assert sum(counts) == 1000


def test_operating_point_accuracy_and_cost_by_hand():
    probs = torch.tensor([
        [[0.9, 0.1], [0.6, 0.4], [0.2, 0.8]],  # exit 1: confident on sample 0 (right) and 2 (wrong)
        [[0.5, 0.5], [0.3, 0.7], [0.4, 0.6]],  # final exit
    ])
    labels = torch.tensor([0, 1, 0])
    result = operating(probs, labels, [0.75], costs=[1_000_000_000, 3_000_000_000])
    assert result["exit_fractions"] == [2 / 3, 1 / 3]
    assert result["top1"] == pytest.approx(200 / 3)  # sample 0 right, 2 wrong at exit 1; sample 1 right
    assert result["gflops"] == pytest.approx((1 + 1 + 3) / 3)


def test_multi_exit_loss_by_hand():
    torch.manual_seed(0)
    targets = F.one_hot(torch.tensor([0, 1, 0, 1]), 2).float()
    outputs = [(torch.randn(4, 8), torch.randn(4, 2)) for _ in range(3)]
    plain = MultiExitLoss(ExitsConfig(loss_weights=[1, 1, 2]), 3)(outputs, targets)
    expected = sum(w * F.cross_entropy(z, targets.argmax(1)) for w, (_, z) in zip([0.25, 0.25, 0.5], outputs, strict=True))
    torch.testing.assert_close(plain, expected)
    graph = MultiExitLoss(ExitsConfig(graph="labels", graph_weight=0.5), 3)(outputs, targets)
    same_class = targets @ targets.T
    extra = 0.5 * sum(graph_smoothness(f, same_class) for f, _ in outputs[:2])
    torch.testing.assert_close(graph, MultiExitLoss(ExitsConfig(), 3)(outputs, targets) + extra)


def test_graph_smoothness_is_zero_for_identical_directions():
    features = torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0]])
    weights = torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    assert graph_smoothness(features, weights).item() == pytest.approx(0.0, abs=1e-6)


def test_run_with_exits_trains_and_calibrates(tmp_path):
    data = tiny_recipe_data(tmp_path / "run", epochs=2)
    data["model"]["exit_layers"] = [2, 4]
    data["exits"] = {"graph": "labels", "distill_weight": 0.5, "sweep_points": 9}
    datasets = {"train": TemplateImages(96), "val": TemplateImages(48, seed=1), "test": TemplateImages(48, seed=2)}
    results = finetune(bind_recipe(data, "test:"), datasets=datasets)
    report = json.loads((tmp_path / "run" / "exits.json").read_text())
    assert report["exit_layers"] == [2, 4] and len(report["curve"]) == 9
    assert len(report["per_exit_top1"]["val"]) == 3 and len(report["cost_to_exit_gflops"]) == 3
    assert report["cost_to_exit_gflops"][0] < report["cost_to_exit_gflops"][1] < report["cost_to_exit_gflops"][2]
    gflops = [pt["val"]["gflops"] for pt in report["curve"]]
    assert gflops == sorted(gflops)  # later exits get more samples as p grows
    assert results["exits"]["no_exit_gflops"] == pytest.approx(results["gflops"])
