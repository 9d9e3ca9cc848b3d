"""The analytic count against torch's operator-level FlopCounterMode and the official code's table."""

import pytest
import timm
import torch
from timm.models.vision_transformer import VisionTransformer
from torch.utils.flop_counter import FlopCounterMode

from sttool.models import ModelConfig, patch_model
from sttool.profiling import gflops_report
from sttool.profiling.flops import count_flops
from tests.helpers import make_tiny_vit


def operator_macs(model, image_size) -> int:
    """Multiply-adds that torch actually dispatches (matmuls, linears, convs), explicit attention."""
    for module in model.modules():
        if hasattr(module, "fused_attn"):
            module.fused_attn = False  # CPU fused attention is invisible to FlopCounterMode
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model.eval()(torch.randn(1, 3, image_size, image_size))
    return counter.get_total_flops() // 2


def without_norms(count) -> int:
    return count.total - count.by_part.get("norm", 0)


@pytest.mark.parametrize("method,keep_rate", [("sparse_tuning", 0.7), ("sparse_tuning_released", 0.5),
                                              ("adaptformer", 1.0), ("lora", 0.7), ("full", 1.0)])
def test_tiny_vit_count_equals_operator_count(method, keep_rate):
    model = patch_model(make_tiny_vit(), method=method, keep_rate=keep_rate)
    analytic = without_norms(count_flops(model))
    measured = operator_macs(model, 32)
    # the analytic count adds the separate [CLS] row, which the explicit path reads off the full map
    assert abs(analytic - measured) / measured < 0.005


@pytest.mark.parametrize("method,keep_rate", [("sparse_tuning", 0.7), ("sparse_tuning_released", 0.7), ("evit+adaptformer", 0.5)])
def test_vit_b_count_within_one_percent_of_operator_count(method, keep_rate):
    torch.manual_seed(0)
    model = patch_model(VisionTransformer(num_classes=100), method=method, keep_rate=keep_rate)
    analytic = count_flops(model).total
    measured = operator_macs(model, 224)
    assert abs(analytic - measured) / measured < 0.01


def test_dense_vit_b_is_17_58_gflops():
    with torch.device("meta"):
        model = VisionTransformer(num_classes=1000)
    assert round(count_flops(model).gflops, 2) == 17.58


# GFLOPs of the released code measured with its own fvcore counter (the official Sparse-Tuning repository, fvcore)
OFFICIAL = {1.0: 17.84, 0.9: 15.63, 0.8: 13.53, 0.7: 11.79, 0.6: 10.24, 0.5: 8.95}


@pytest.mark.parametrize("keep_rate", sorted(OFFICIAL))
def test_released_variant_follows_the_official_table(keep_rate):
    report = gflops_report(ModelConfig(method="sparse_tuning_released", keep_rate=keep_rate, num_classes=100))
    assert abs(report["gflops"] - OFFICIAL[keep_rate]) / OFFICIAL[keep_rate] < 0.01


def test_sparse_tuning_default_is_about_11_7_gflops_and_66_percent():
    report = gflops_report(ModelConfig())
    assert abs(report["gflops"] - 11.7) / 11.7 < 0.01
    assert report["tokens_per_stage"] == [197, 140, 100, 72]
    assert 0.66 <= report["gflops_ratio"] <= 0.675
    assert round(report["dense_gflops"], 2) == 17.58


def test_evit_without_adapters_matches_official_11_62():
    report = gflops_report(ModelConfig(method="evit+linear", num_classes=100))
    assert abs(report["gflops"] - 11.62) / 11.62 < 0.005


def test_dense_backbone_of_a_model_with_exits_is_the_plain_vit():
    """The dense column is timm's ViT-B/16 with its head: 86.57 M parameters (timm's own count)."""
    with torch.device("meta"):
        plain = sum(p.numel() for p in timm.create_model("vit_base_patch16_224", num_classes=100).parameters())
    report = gflops_report(ModelConfig(num_classes=100, exit_layers=[4, 8]))
    assert report["dense"]["params_total"] == plain
    assert round(report["dense_gflops"], 2) == 17.58
