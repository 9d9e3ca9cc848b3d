"""The timm model API on a patched model: kept where sttool can keep it, refused out loud where not."""

import pytest
import torch
from timm.models.vision_transformer import VisionTransformer

import sttool
from sttool.errors import SttoolError
from sttool.models.exits import predict_early_exit
from tests.helpers import make_tiny_vit, randomise_adapters

pytestmark = pytest.mark.unit


def _patched(**options):
    model = sttool.patch_model(make_tiny_vit(), **options)
    randomise_adapters(model)
    return model.eval()


def test_an_unknown_subclass_of_vision_transformer_is_refused_in_one_line():
    class OwnForward(VisionTransformer):  # a subclass may change what the forward does; sttool cannot know
        pass

    with pytest.raises(SttoolError, match="not OwnForward") as err:
        sttool.patch_model(OwnForward(img_size=32, patch_size=8, embed_dim=48, depth=12, num_heads=3))
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_patching_keeps_the_models_mode(mode):
    vit = make_tiny_vit().train(mode == "train")
    model = sttool.patch_model(vit, method="sparse_tuning", exit_layers=[4])
    assert all(m.training == (mode == "train") for m in model.modules())


def test_every_forward_runs_the_same_blocks():
    model = _patched(method="sparse_tuning", keep_rate=0.7, exit_layers=[4, 8])
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        plain = model(x)
        final_exit = model.forward_exits(x)[-1][1]
        never_leave, exits = predict_early_exit(model, x, [float("inf"), float("inf")])
    assert torch.allclose(plain, final_exit, atol=1e-6)
    assert torch.allclose(plain, never_leave, atol=1e-6) and exits.tolist() == [2, 2, 2]


def _saved_bytes(model, x) -> tuple[torch.Tensor, int]:
    """Output and bytes the autograd graph saves for the backward pass (a memory count that does not
    depend on the allocator)."""
    total = 0

    def pack(tensor):
        nonlocal total
        total += tensor.numel() * tensor.element_size()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = model(x)
    return out, total


@pytest.mark.parametrize("method", ["sparse_tuning", "sparse_tuning_released", "adaptformer", "lora"])
def test_gradient_checkpointing_gives_the_same_gradients_and_saves_less(method):
    model = _patched(method=method, keep_rate=0.7 if method.startswith("sparse") else 1.0).train()
    x = torch.randn(4, 3, 32, 32)
    grads = []
    for checkpointing in (False, True):
        model.set_grad_checkpointing(checkpointing)
        model.zero_grad(set_to_none=True)
        torch.manual_seed(0)
        out, saved = _saved_bytes(model, x)
        out.square().mean().backward()
        grads.append(({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}, out.detach(), saved))
    (plain_grads, plain_out, plain_saved), (ckpt_grads, ckpt_out, ckpt_saved) = grads
    assert torch.allclose(plain_out, ckpt_out, atol=1e-6)
    assert plain_grads.keys() == ckpt_grads.keys() and len(plain_grads) > 2
    for name in plain_grads:
        assert torch.allclose(plain_grads[name], ckpt_grads[name], atol=1e-6, rtol=1e-4), name
    assert ckpt_saved < plain_saved / 3


def test_forward_intermediates_without_pruning_equal_timms():
    reference = make_tiny_vit()
    model = sttool.patch_model(make_tiny_vit(), method="linear", keep_rate=1.0).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        final, ours = model.forward_intermediates(x, indices=[2, 5, 11])
        ref_final, theirs = reference.forward_intermediates(x, indices=[2, 5, 11])
        nlc = model.get_intermediate_layers(x, n=2)
        ref_nlc = reference.get_intermediate_layers(x, n=2)
    assert torch.allclose(final, ref_final, atol=1e-6)
    assert [t.shape for t in ours] == [(2, 48, 4, 4)] * 3
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(ours, theirs, strict=True))
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(nlc, ref_nlc, strict=True))


def test_forward_intermediates_keep_the_dense_adapters_history():
    model = _patched(method="sparse_tuning", keep_rate=0.7)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        final, picked = model.forward_intermediates(x, indices=[11], output_fmt="NLC")
        features = model.forward_features(x)
    assert torch.allclose(final, features, atol=1e-6)  # the adapters saw their history: same as the real forward
    assert picked[0].shape[1] == features.shape[1] - 1  # the kept tokens and the fused one, [CLS] apart
    with pytest.raises(SttoolError, match="block 4 prunes tokens"):
        model.forward_intermediates(x, indices=[5])
    early = model.forward_intermediates(x, indices=[1], intermediates_only=True)
    assert early[0].shape == (2, 48, 4, 4)


def test_attention_masks_and_lone_blocks_are_refused():
    model = _patched(method="sparse_tuning", keep_rate=0.7)
    x = torch.randn(1, 3, 32, 32)
    with pytest.raises(SttoolError, match="attn_mask"):
        model(x, attn_mask=torch.ones(17, 17, dtype=torch.bool))
    with pytest.raises(SttoolError, match="ForwardState"):
        model.blocks[3](torch.randn(1, 17, 48))
