"""The patched model against timm itself and against a slow reference written from the equations."""

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from sttool.models import ForwardState, patch_model
from tests.helpers import make_tiny_vit, randomise_adapters


def linear(x, layer):
    return F.linear(x, layer.weight, layer.bias)


def reference_forward(model, images, keep_rate, keep_layers):
    """One sample at a time, explicit attention maps, every method's equations written out plainly."""
    kind = model.sttool_config.spec.adapter
    depth = len(model.blocks)
    prune = [layer - 1 for layer in keep_layers] if keep_rate < 1 else []
    stage_ends = sorted({p - 1 for p in (layer - 1 for layer in keep_layers)} | {depth - 1})
    outputs = []
    for image in images:
        tokens = model._pos_embed(model.patch_embed(image[None]))[0]  # (N, C)
        adapter_outputs = []  # every earlier adapter output, at the current token set
        stage_sum = tokens.clone()
        for i, block in enumerate(model.blocks):
            n, c = tokens.shape
            heads = block.attn.num_heads
            h = F.layer_norm(tokens, (c,), block.norm1.weight, block.norm1.bias, block.norm1.eps)
            qkv = linear(h, block.attn.qkv)
            if kind == "lora":
                lora = block.lora
                q_delta = h @ lora.q_down.weight.T @ lora.q_up.weight.T * lora.scale
                v_delta = h @ lora.v_down.weight.T @ lora.v_up.weight.T * lora.scale
                qkv = qkv + torch.cat([q_delta, torch.zeros_like(q_delta), v_delta], dim=-1)
            q, k, v = qkv.view(n, 3, heads, c // heads).permute(1, 2, 0, 3)  # each (H, N, d)
            attention = (q @ k.transpose(1, 2) / math.sqrt(c // heads)).softmax(-1)  # (H, N, N)
            attended = (attention @ v).transpose(0, 1).reshape(n, c)
            u = tokens + linear(attended, block.attn.proj)
            if i in prune:
                scores = attention[:, 0, 1:].mean(0)
                kept_count = math.ceil(keep_rate * (n - 1))
                order = torch.argsort(scores, descending=True)
                kept, dropped = order[:kept_count], order[kept_count:]

                def select(z, kept=kept, dropped=dropped, scores=scores):
                    fused = (scores[dropped, None] * z[1 + dropped]).sum(0, keepdim=True)
                    return torch.cat([z[:1], z[1 + kept], fused])

                u = select(u)
                adapter_outputs = [select(a) for a in adapter_outputs]
            h2 = F.layer_norm(u, (c,), block.norm2.weight, block.norm2.bias, block.norm2.eps)
            out = u + block.mlp(h2)
            adapter = block.adapter
            if kind == "dense":
                hidden = linear(u, adapter.down1)
                if i >= 1:
                    hidden = hidden + adapter_outputs[i - 1] @ adapter.down2.weight.T
                if i >= 3:
                    hidden = hidden + adapter_outputs[i - 3] @ adapter.down3.weight.T
                x_da = linear(F.relu(hidden), adapter.up)
                adapter_outputs.append(x_da)
                out = out + adapter.scale * x_da
            elif kind == "parallel":
                out = out + adapter.scale * linear(F.relu(linear(u, adapter.down)), adapter.up)
            elif kind == "stage":
                x0 = F.relu(linear(u, adapter.down1))
                s1 = linear(x0, adapter.down2)
                a = linear(linear(torch.cat([s1, linear(s1, adapter.up1)], -1), adapter.down3) + x0, adapter.up2)
                out = out + a
                if i < depth - 1:
                    stage_sum = a if stage_sum is None else stage_sum + a
                if i in stage_ends:
                    out = out + stage_sum
                    stage_sum = None
            tokens = out
        final = model.norm(tokens[None])[:, 0]
        outputs.append(model.head(model.head_norm(final))[0])
    return torch.stack(outputs)


METHODS = ["sparse_tuning", "sparse_tuning_released", "adaptformer", "lora", "full", "linear"]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("keep_rate", [1.0, 0.7, 0.5])
def test_patched_model_matches_slow_reference(method, keep_rate, images):
    model = patch_model(make_tiny_vit(), method=method, keep_rate=keep_rate, adapter_dropout=0.0).eval()
    randomise_adapters(model)
    with torch.no_grad():
        expected = reference_forward(model, images, keep_rate, [4, 7, 10])
        torch.testing.assert_close(model(images), expected, atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize("method", ["sparse_tuning", "adaptformer", "lora", "full", "linear"])
def test_keep_rate_one_and_zero_adapters_equal_timm(method, images):
    vit = make_tiny_vit()
    reference = copy.deepcopy(vit)
    model = patch_model(vit, method=method, keep_rate=1.0, head="linear").eval()
    with torch.no_grad():
        torch.testing.assert_close(model(images), reference(images), atol=1e-5, rtol=0)


def test_zero_initialised_sparse_tuning_equals_the_sparsified_frozen_backbone(images):
    sparse_tuning = patch_model(make_tiny_vit(), method="sparse_tuning").eval()
    evit = patch_model(make_tiny_vit(), method="evit+linear").eval()
    with torch.no_grad():
        torch.testing.assert_close(sparse_tuning(images), evit(images), atol=1e-6, rtol=0)


def test_selections_are_recorded_per_block(images):
    model = patch_model(make_tiny_vit(), method="sparse_tuning").eval()
    state = ForwardState()
    with torch.no_grad():
        tokens = model.forward_features(images, state=state)
    assert [i for i, s in enumerate(state.selections) if s is not None] == [3, 6, 9]
    assert tokens.shape[1] == 10  # 17 -> 14 -> 12 -> 10


def test_bn_head_in_eval_uses_running_statistics(images):
    model = patch_model(make_tiny_vit(), method="linear")
    assert isinstance(model.head_norm, torch.nn.BatchNorm1d) and not model.head_norm.affine
    model.train()
    model(images)
    assert model.head_norm.running_mean.abs().sum() > 0


def test_released_variant_stage_ends_follow_the_keep_layers():
    """The official code closes stages at 0-based blocks 2, 5, 8, 11; sttool derives them from the keep
    layers (the block before each pruning block, and the last), which is the same for the default."""
    from sttool.models.dense_adapter import stage_ends

    assert stage_ends(12, [3, 6, 9]) == [2, 5, 8, 11]  # keep_layers 4, 7, 10: the official blocks
    assert stage_ends(12, [2, 5, 8]) == [1, 4, 7, 11]  # keep_layers 3, 6, 9: documented in the README
    model = patch_model(make_tiny_vit(), method="sparse_tuning_released", keep_layers=[3, 6, 9])
    assert [i for i, b in enumerate(model.blocks) if b.adapter.closes_stage] == [1, 4, 7, 11]
