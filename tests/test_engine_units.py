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


def test_evit_keep_rate_schedule_by_hand():
    from sttool.engine.loop import evit_keep_rate

    # EViT's schedule (github.com/youweiliang/evit, helpers.adjust_keep_rate): base 0.7, every token kept
    # in epoch 0, a half cosine over epochs 1 and 2 (10 steps each), then the base rate
    rates = [evit_keep_rate(step, step // 10, 1, 3, 10, 0.7) for step in (0, 9, 10, 20, 25, 30, 55)]
    assert rates == pytest.approx([1.0, 1.0, 1.0, 0.85, 0.7 + 0.3 * (1 + math.cos(0.75 * math.pi)) / 2, 0.7, 0.7])


def test_evit_methods_default_to_the_official_head_and_schedule():
    from sttool.runs.recipe import bind_recipe

    evit = bind_recipe({"model": {"method": "evit+adaptformer"}, "train": {"epochs": 300}}, "t:")
    assert evit.model.resolved().head == "linear" and evit.keep_rate_schedule() == (10, 100)
    sparse = bind_recipe({"model": {"method": "sparse_tuning"}, "train": {"epochs": 300}}, "t:")
    assert sparse.model.resolved().head == "bn_linear" and sparse.keep_rate_schedule() == (0, 0)
    fixed = bind_recipe({"model": {"method": "evit"}, "train": {"epochs": 30, "shrink_start_epoch": 0, "shrink_epochs": 0}}, "t:")
    assert fixed.keep_rate_schedule() == (0, 0)  # EViT's own fine-tuning script (finetune.sh) prunes from step 0


def test_a_run_follows_the_schedule_step_by_step(tmp_path):
    from sttool.engine import finetune
    from sttool.runs.recipe import bind_recipe
    from tests.helpers import TemplateImages, tiny_recipe_data

    seen = []
    data = tiny_recipe_data(tmp_path / "run", epochs=3, shrink_start_epoch=1, shrink_epochs=1)
    data["model"].update({"method": "evit+linear", "keep_rate": 0.5})
    recipe = bind_recipe(data, "t:")
    import sttool.engine.loop as loop

    real = loop.EpochRunner._forward_backward

    def record(self, batch, global_step, micro, last_micro):
        seen.append((global_step, self.sparse.sparse_blocks()[1].keep_rate))
        return real(self, batch, global_step, micro, last_micro)

    loop.EpochRunner._forward_backward = record
    try:
        finetune(recipe, datasets={"train": TemplateImages(96), "val": TemplateImages(32, seed=1), "test": TemplateImages(48, seed=2)})
    finally:
        loop.EpochRunner._forward_backward = real
    steps = 96 // 16
    expected = [loop.evit_keep_rate(step, step // steps, 1, 2, steps, 0.5) for step, _ in seen]
    shown = [1.0 if rate is None else rate for _, rate in seen]  # a block keeping every token has no keep rate
    assert [step for step, _ in seen] == list(range(3 * steps)) and shown == pytest.approx(expected)
    assert shown[:steps] == [1.0] * steps and shown[-steps:] == [0.5] * steps
