"""Exits: compaction gives the predictions of the all-exits reference; expected cost equals the run."""

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from sttool.models import patch_model
from sttool.models.exits import confidence, exit_assignment, predict_early_exit
from sttool.profiling.flops import count_flops
from tests.helpers import make_tiny_vit, randomise_adapters


def exit_model(keep_rate=0.7, **options):
    model = patch_model(make_tiny_vit(), method="sparse_tuning", keep_rate=keep_rate, exit_layers=[3, 6, 9], **options)
    randomise_adapters(model, std=0.2)  # also the exit adapters and heads, so exits disagree
    with torch.no_grad():
        for head in model.exits.heads:
            head.head.weight.normal_(0, 0.5)
    return model.eval()


def test_exits_are_trained_and_shared_projections_exist_once():
    model = patch_model(make_tiny_vit(), method="sparse_tuning", exit_layers=[4, 8])
    names = [n for n, p in model.named_parameters() if p.requires_grad and n.startswith("exits.")]
    assert sum(n.startswith("exits.shared.") for n in names) == 4  # one down and one up, with biases
    assert {n.split(".")[2] for n in names if n.startswith("exits.heads.")} == {"0", "1"}
    assert model.exits.blocks == [3, 7]


@pytest.mark.parametrize(("keep_rate", "frames"), [(1.0, None), (0.7, None), (0.7, 4)])
def test_compaction_equals_every_exit_on_every_sample(keep_rate, frames):
    video = {} if frames is None else {"num_frames": frames, "tubelet": 2}
    model = exit_model(keep_rate, **video)
    images = torch.randn(16, 3, 32, 32) if frames is None else torch.randn(16, 3, frames, 32, 32)  # (B, 3, [T,] H, W)
    with torch.no_grad():
        outputs = model.forward_exits(images)
        logits = torch.stack([out[1] for out in outputs])  # (K, B, classes)
        conf = torch.stack([confidence(z) for z in logits])
        ordered = conf.sort(dim=1).values  # halfway between two samples: no confidence sits on a threshold
        thresholds = [float(ordered[k, 7] + ordered[k, 8]) / 2 for k in range(3)]
        expected_exit = exit_assignment(conf, thresholds)
        got_logits, got_exit = predict_early_exit(model, images, thresholds)
    assert torch.equal(got_exit, expected_exit)
    assert len(set(got_exit.tolist())) > 2  # several exits are really used
    reference = logits[expected_exit, torch.arange(16)]
    torch.testing.assert_close(got_logits, reference, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(outputs[-1][1], model(images), atol=1e-5, rtol=1e-5)


def test_expected_cost_equals_the_operations_of_the_path_run():
    model = exit_model()
    for module in model.modules():
        if hasattr(module, "fused_attn"):
            module.fused_attn = False  # so FlopCounterMode sees the attention products
    images = torch.randn(12, 3, 32, 32)
    with torch.no_grad():
        conf = torch.stack([confidence(out[1]) for out in model.forward_exits(images)])
    thresholds = [conf[k].quantile(0.7).item() for k in range(3)]
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        _, exit_of = predict_early_exit(model, images, thresholds)
    measured = counter.get_total_flops() / 2  # multiply-adds of the whole compacted batch
    costs = count_flops(model, include_norms=False).cost_to_exit()  # products only, as the counter sees
    expected = sum(costs[k] for k in exit_of.tolist())
    assert len(set(exit_of.tolist())) > 2
    # the separate [CLS] row (N x A per pruning block) is read off the full map on the explicit path
    assert expected == pytest.approx(measured, rel=0.005)
