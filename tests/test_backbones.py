"""Every timm ViT family sttool patches: exact against timm at keep 1.0, pruning by the documented score
rule below it, and the families it cannot patch refused in one line."""

import copy

import pytest
import timm
import torch
import torch.nn.functional as F
from timm.models.deit import VisionTransformerDistilled
from timm.models.vision_transformer import VisionTransformer

import sttool
from sttool.errors import SttoolError
from sttool.models import ForwardState
from sttool.models.vit import attend, pool_scores
from sttool.profiling.flops import count_flops
from tests.helpers import TINY
from tests.test_flops import operator_macs

pytestmark = pytest.mark.unit

# Tiny versions of the families (12 blocks, 16 patches), with the options that make each family what it is.
FAMILIES = {
    "vit (cls token)": (VisionTransformer, {}),
    "deit3 (layer scale)": (VisionTransformer, {"init_values": 1e-2, "no_embed_class": True}),
    "dinov2 with registers": (VisionTransformer, {"reg_tokens": 4, "init_values": 1e-2, "no_embed_class": True}),
    "clip (pre-norm, quick-gelu)": (VisionTransformer, {"pre_norm": True, "act_layer": "quick_gelu"}),
    "cls token, average pool": (VisionTransformer, {"global_pool": "avg", "fc_norm": True}),
    "no class token, average pool": (VisionTransformer, {"class_token": False, "global_pool": "avg", "fc_norm": True}),
    "siglip (no class token, attention pool)": (VisionTransformer, {"class_token": False, "global_pool": "map"}),
    "distilled deit": (VisionTransformerDistilled, {}),
}
SCORES = {"no class token, average pool": "mean", "siglip (no class token, attention pool)": "pool"}


def family_model(name: str, seed: int = 0) -> VisionTransformer:
    cls, options = FAMILIES[name]
    torch.manual_seed(seed)
    model = cls(**{**TINY, **options}).eval()
    with torch.no_grad():  # non-zero prefix tokens and pool latent, so a mix-up of tokens shows in the output
        for param_name, param in model.named_parameters():
            if param_name.endswith(("cls_token", "reg_token", "dist_token", "latent")):
                param.normal_(0, 0.5)
    return model


@pytest.fixture
def images():
    return torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("method", ["sparse_tuning", "adaptformer", "lora", "evit"])
def test_keep_rate_one_equals_timm(family, method, images):
    timm_model = family_model(family)
    patched = sttool.patch_model(copy.deepcopy(timm_model), method=method, keep_rate=1.0, head="linear")
    with torch.no_grad():
        assert (patched.eval()(images) - timm_model(images)).abs().max() < 1e-5


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_the_score_rule_follows_the_backbone(family):
    model = sttool.patch_model(family_model(family), keep_rate=0.7)
    expected = SCORES.get(family, "cls")
    assert model.sttool_config.token_score == expected
    assert {block.score for block in model.sparse_blocks()} == {expected}


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("method", ["sparse_tuning", "evit+adaptformer"])
def test_pruning_keeps_every_prefix_token_and_trains(family, method, images):
    model = sttool.patch_model(family_model(family), method=method, keep_rate=0.5, exit_layers=[6],
                               exit_pool="mean", num_classes=5).train()
    prefix = model.num_prefix_tokens
    state = ForwardState()
    tokens = model.forward_features(images, state=state)
    kept = [s for s in state.selections if s is not None]
    assert len(kept) == 3 and all(s.num_prefix == prefix for s in kept)
    assert tokens.shape[1] == prefix + 3 + 1  # candidates 16 -> 8+1 -> 5+1 -> 3+1 (kept, then the fused token)
    outputs = model.forward_exits(images)
    loss = sum(F.cross_entropy(logits, torch.tensor([0, 1, 2])) for _, logits in outputs)
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.head.parameters())


def _explicit_attention(attn, x):
    """The head-averaged (B, N, N) attention map of a timm Attention, written out."""
    B, N, C = x.shape
    q, k, _ = attn.qkv(x).reshape(B, N, 3, attn.num_heads, C // attn.num_heads).permute(2, 0, 3, 1, 4)
    return ((q @ k.transpose(-2, -1)) * attn.scale).softmax(-1).mean(1)  # (B, N, N)


def test_mean_score_is_the_attention_each_token_receives():
    block = family_model("no class token, average pool").blocks[3]
    x = torch.randn(2, 16, TINY["embed_dim"])
    with torch.no_grad():
        _, row = attend(block.attn, x, cls_row=True, score="mean")
        expected = _explicit_attention(block.attn, x).mean(1)  # averaged over the queries
    assert torch.allclose(row, expected, atol=1e-6)
    assert torch.allclose(row.sum(-1), torch.ones(2))


def test_pool_score_is_the_attention_pool_querys_attention():
    pool = family_model("siglip (no class token, attention pool)").attn_pool
    x = torch.randn(2, 16, TINY["embed_dim"])
    B, N, C = x.shape
    captured = {}

    def keys_hook(module, inputs, output):
        captured["k"] = output.reshape(B, N, 2, pool.num_heads, pool.head_dim)[:, :, 0].transpose(1, 2)

    handle = pool.kv.register_forward_hook(keys_hook)
    with torch.no_grad():
        pool(x)  # timm's own forward produces the keys
        handle.remove()
        q = pool.q(pool.latent).reshape(1, -1, pool.num_heads, pool.head_dim).transpose(1, 2)
        expected = ((q @ captured["k"].transpose(-2, -1)) * pool.scale).softmax(-1).mean((1, 2))
        row = pool_scores(pool, x)
    assert torch.allclose(row, expected, atol=1e-6)


def test_the_distilled_deit_averages_both_heads_as_timm_does(images):
    timm_model = family_model("distilled deit")
    patched = sttool.patch_model(copy.deepcopy(timm_model), keep_rate=1.0, head="linear")
    with torch.no_grad():
        tokens = patched.forward_features(images)
        expected = (timm_model.head(tokens[:, 0]) + timm_model.head_dist(tokens[:, 1])) / 2
        assert torch.allclose(patched.forward_head(tokens), expected, atol=1e-6)
    tuned = sttool.patch_model(family_model("distilled deit"), num_classes=7)
    trainable = {name for name, p in tuned.named_parameters() if p.requires_grad}
    assert {"head.weight", "head_dist.weight"} <= trainable and "dist_token" not in trainable
    added = {k for k in tuned.state_dict() if "adapter" in k or k.startswith(("head_norm.", "head_dist_norm."))}
    assert tuned.state_dict().keys() - added == timm_model.state_dict().keys()  # timm's keys, unchanged


@pytest.mark.parametrize("family", ["siglip (no class token, attention pool)", "no class token, average pool",
                                    "distilled deit", "dinov2 with registers"])
def test_flop_count_equals_operator_count(family):
    model = sttool.patch_model(family_model(family), keep_rate=0.7)
    count = count_flops(model)
    analytic = count.total - count.by_part.get("norm", 0)
    if SCORES.get(family) == "mean":  # the fused path computes the full map again for the score; the explicit one reads it
        analytic -= count.by_part["selection score"]
    measured = operator_macs(model, 32)
    assert abs(analytic - measured) / measured < 0.005


@pytest.mark.parametrize("build,match", [
    (lambda: timm.create_model("eva02_tiny_patch14_224", pretrained=False, img_size=28), "Eva class"),
    (lambda: family_model("siglip (no class token, attention pool)"), None),
])
def test_unsupported_families_are_refused_in_one_line(build, match):
    model = build()
    if match is None:  # an attention pool with its own position embedding cannot follow pruned tokens
        model.attn_pool.pos_embed = torch.nn.Parameter(torch.zeros(16, TINY["embed_dim"]))
        match = "position embedding"
    with pytest.raises(SttoolError, match=match) as err:
        sttool.patch_model(model)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("family,options,match", [
    ("no class token, average pool", {"token_score": "cls"}, "token_score: 'cls' needs a class token"),
    ("no class token, average pool", {"token_score": "pool"}, "token_score: 'pool' needs an attention-pool"),
    ("no class token, average pool", {"exit_layers": [6]}, "exit_pool: 'token'"),
    ("distilled deit", {"num_frames": 4}, "distilled DeiT has no video form"),
])
def test_options_a_family_cannot_honour_are_refused(family, options, match):
    with pytest.raises(SttoolError, match=match):
        sttool.patch_model(family_model(family), **options)


def test_mean_rule_can_be_chosen_for_a_cls_backbone(images):
    model = sttool.patch_model(family_model("vit (cls token)"), keep_rate=0.7, token_score="mean")
    assert model.sttool_config.token_score == "mean"
    with torch.no_grad():
        assert model(images).shape == (3, 10)
