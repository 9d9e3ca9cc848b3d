"""Engine pieces against hand computations: schedule, soft targets, batch plans, checkpoints."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sttool.engine.loop import learning_rate
from sttool.engine.objectives import MixupCutmix, soft_cross_entropy
from sttool.engine.sampling import BatchPlan
from sttool.models import patch_model
from sttool.runs.checkpoint import read_checkpoint, save_checkpoint, trained_state
from tests.helpers import make_tiny_vit


def test_warmup_then_cosine():
    assert learning_rate(0, 100, 10, 1.0) == 0.0
    assert learning_rate(5, 100, 10, 1.0) == pytest.approx(0.5)
    assert learning_rate(10, 100, 10, 1.0) == pytest.approx(1.0)
    assert learning_rate(55, 100, 10, 1.0, 0.1) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert learning_rate(100, 100, 10, 1.0, 0.1) == pytest.approx(0.1)


def test_soft_targets_match_label_smoothing_cross_entropy():
    logits = torch.randn(6, 5)
    labels = torch.tensor([0, 1, 2, 3, 4, 0])
    mixer = MixupCutmix(5, smoothing=0.1)
    inputs, targets = mixer(torch.randn(6, 3, 8, 8), labels, np.random.default_rng(0))
    torch.testing.assert_close(soft_cross_entropy(logits, targets), F.cross_entropy(logits, labels, label_smoothing=0.1))


@pytest.mark.parametrize("mixup,cutmix", [(0.8, 0.0), (0.0, 1.0)])
def test_mixed_targets_are_distributions_weighted_like_the_inputs(mixup, cutmix):
    labels = torch.tensor([0, 1, 2, 3])
    inputs = torch.stack([torch.full((3, 8, 8), float(i)) for i in range(4)])
    mixed, targets = MixupCutmix(4, 0.0, mixup, cutmix)(inputs, labels, np.random.default_rng(3))
    torch.testing.assert_close(targets.sum(1), torch.ones(4))
    # the share of sample 0 in mixed input 0 equals its target weight
    own = targets[0, 0].item()
    if cutmix:
        share = (mixed[0] == 0).float().mean().item()
    else:
        share = 1 - mixed[0, 0, 0, 0].item() / 3.0  # 0 * lam + 3 * (1 - lam)
    assert share == pytest.approx(own, abs=1e-6)


def test_two_processes_see_the_batches_of_one():
    one = BatchPlan(40, 8, accum_steps=2, world_size=1, rank=0, seed=5)
    ranks = [BatchPlan(40, 8, accum_steps=2, world_size=2, rank=r, seed=5) for r in range(2)]
    single = list(one.micro_batches(epoch=3))
    split = [list(p.micro_batches(epoch=3)) for p in ranks]
    assert one.steps_per_epoch == 5 and len(single) == len(split[0]) == 10  # 2 micro-batches per step
    assert one.micro_batch_size == 4 and ranks[0].micro_batch_size == 2
    for step in range(5):
        global_one = {i for mb in single[2 * step:2 * step + 2] for _, i in mb}
        global_two = {i for r in range(2) for mb in split[r][2 * step:2 * step + 2] for _, i in mb}
        assert global_one == global_two and len(global_one) == 8
    assert list(one.micro_batches(epoch=3, first_step=2)) == single[4:]
    assert [i for mb in single for _, i in mb] != [i for mb in one.micro_batches(epoch=4) for _, i in mb]


def test_checkpoint_holds_only_trained_tensors_and_round_trips(tmp_path):
    model = patch_model(make_tiny_vit(), method="sparse_tuning")
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad])
    model(torch.randn(2, 3, 32, 32)).sum().backward()
    optimizer.step()
    path = tmp_path / "c.safetensors"
    save_checkpoint(path, model, {"epoch": 1}, optimizer)
    state, optim, meta = read_checkpoint(path)
    assert meta["epoch"] == 1 and optim
    assert set(state) == set(trained_state(model))
    assert not any(".attn.qkv." in k or k.startswith("patch_embed") for k in state)
    assert {k.split(".")[0] for k in state} <= {"blocks", "head", "head_norm"}
    for key, value in trained_state(model).items():
        torch.testing.assert_close(state[key], value)
    assert not list(tmp_path.glob("*.tmp"))
