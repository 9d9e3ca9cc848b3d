"""Parameter counts by hand, what trains and what stays frozen, and timm state_dict compatibility."""

import pytest
import torch
from timm.models.vision_transformer import VisionTransformer

from sttool.models import count_parameters, patch_model, trainable_parameters
from tests.helpers import make_tiny_vit, randomise_adapters

D = 768  # ViT-B


def vit_b_on_meta() -> VisionTransformer:
    with torch.device("meta"):
        return VisionTransformer(img_size=224, patch_size=16, embed_dim=D, depth=12, num_heads=12, num_classes=100)


@pytest.mark.parametrize(
    "method,options,expected",
    [
        # W_down1 and W_up in 12 blocks, W_down2 in 11, W_down3 in 9: 44 D x r matrices, one r-bias and one D-bias per block
        ("sparse_tuning", {}, 44 * D * 32 + 12 * 32 + 12 * D),
        ("sparse_tuning", {"bottleneck": 8}, 44 * D * 8 + 12 * 8 + 12 * D),
        # the released code's 768->64->32->64, 96->64, 64->768 adapter: 109,536 per block
        ("sparse_tuning_released", {}, 12 * 109_536),
        ("adaptformer", {}, 12 * (D * 64 + 64 + 64 * D + D)),
        ("lora", {}, 12 * 2 * (D * 8 + 8 * D)),
        ("linear", {}, 0),
    ],
)
def test_vit_b_trainable_parameters_by_hand(method, options, expected):
    model = patch_model(vit_b_on_meta(), method=method, **options)
    assert count_parameters(model)["trainable_no_head"] == expected


def test_paper_figures_for_vit_b():
    counts = count_parameters(patch_model(vit_b_on_meta(), method="sparse_tuning"))
    assert round(counts["trainable_no_head"] / 1e6, 2) == 1.09
    assert count_parameters(patch_model(vit_b_on_meta(), method="full"))["trainable_no_head"] == 85_798_656


@pytest.mark.parametrize("method", ["sparse_tuning", "sparse_tuning_released", "adaptformer", "lora", "linear", "full"])
def test_gradients_reach_every_trained_tensor_and_no_frozen_one(method, images):
    model = patch_model(make_tiny_vit(), method=method).train()
    randomise_adapters(model)  # with W_up = 0 the down-projections would get zero gradient
    model(images).logsumexp(-1).sum().backward()
    trained = {id(p) for p in trainable_parameters(model)}
    for name, param in model.named_parameters():
        if id(param) in trained:
            assert param.grad is not None and param.grad.abs().sum() > 0, name
        else:
            assert param.grad is None, name
    frozen_backbone = [n for n, p in model.named_parameters() if n.startswith("blocks.") and ".attn.qkv" in n and p.requires_grad]
    assert bool(frozen_backbone) == (method == "full")


def test_state_dict_keys_round_trip_with_timm():
    timm_model = make_tiny_vit(seed=3)
    timm_keys = set(timm_model.state_dict())
    patched = patch_model(make_tiny_vit(seed=4), method="sparse_tuning")
    missing, unexpected = patched.load_state_dict(timm_model.state_dict(), strict=False)
    assert not unexpected
    assert all(".adapter." in k or k.startswith("head_norm.") for k in missing)
    assert timm_keys <= set(patched.state_dict())
    back = make_tiny_vit(seed=5)
    back.load_state_dict({k: v for k, v in patched.state_dict().items() if k in timm_keys}, strict=True)
    for key, value in timm_model.state_dict().items():
        torch.testing.assert_close(back.state_dict()[key], value)


def test_patching_twice_or_a_non_vit_is_a_clear_error():
    from sttool.errors import SttoolError

    model = patch_model(make_tiny_vit())
    with pytest.raises(SttoolError, match="already patched"):
        patch_model(model)
    with pytest.raises(SttoolError, match="VisionTransformer"):
        patch_model(torch.nn.Linear(2, 2))
