"""The video model: tubelet embedding inflated from the image one, space-time tokens, sparsification."""

import pytest
import torch

from sttool.models import ForwardState, patch_model, tokens_after
from sttool.profiling.flops import count_flops
from tests.helpers import make_tiny_vit


@pytest.mark.parametrize("tubelet", [1, 2])
def test_static_clip_gives_the_image_patch_tokens(tubelet):
    vit = make_tiny_vit()
    image = torch.randn(2, 3, 32, 32)
    expected = vit.patch_embed(image)  # (B, 16, C)
    model = patch_model(vit, method="sparse_tuning", num_frames=4, tubelet=tubelet)
    clip = image.unsqueeze(2).expand(-1, -1, 4, -1, -1)  # (B, 3, T, H, W), every frame the same
    tokens = model.patch_embed(clip)  # (B, T / t, 16, C)
    assert tokens.shape == (2, 4 // tubelet, 16, 48)
    for t in range(4 // tubelet):
        torch.testing.assert_close(tokens[:, t], expected, atol=1e-5, rtol=1e-5)


def test_space_time_tokens_are_sparsified_like_image_tokens():
    model = patch_model(make_tiny_vit(), method="sparse_tuning", num_frames=8, tubelet=2).eval()
    clip = torch.randn(2, 3, 8, 32, 32)
    state = ForwardState()
    with torch.no_grad():
        tokens = model.forward_features(clip, state=state)
    counts = [1 + 4 * 16]
    for _ in range(3):
        counts.append(tokens_after(counts[-1], 0.7))
    assert tokens.shape[1] == counts[-1]
    assert model.forward_head(tokens).shape == (2, 10)
    assert count_flops(model).tokens_per_stage == counts


def test_time_position_is_learned_and_reaches_the_loss():
    model = patch_model(make_tiny_vit(), method="sparse_tuning", num_frames=4).train()
    assert model.time_embed.requires_grad and model.time_embed.abs().sum() == 0
    model(torch.randn(2, 3, 4, 32, 32)).sum().backward()
    assert model.time_embed.grad is not None and model.time_embed.grad.abs().sum() > 0
    assert not patch_model(make_tiny_vit(), method="linear", num_frames=4).time_embed.requires_grad


def test_video_flops_equal_the_operator_count():
    model = patch_model(make_tiny_vit(), method="sparse_tuning", num_frames=4, tubelet=2)
    count = count_flops(model)
    for module in model.modules():
        if hasattr(module, "fused_attn"):
            module.fused_attn = False
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model.eval()(torch.randn(1, 3, 4, 32, 32))
    measured = counter.get_total_flops() // 2
    assert abs(count.total - count.by_part["norm"] - measured) / measured < 0.005


def test_images_into_a_video_model_are_a_clear_error():
    from sttool.errors import SttoolError

    model = patch_model(make_tiny_vit(), num_frames=4)
    with pytest.raises(SttoolError, match=r"takes clips shaped \(B, 3, T, H, W\)"):
        model(torch.randn(1, 3, 32, 32))
