"""The separately computed [CLS] row equals row 0 of the materialised attention map."""

import torch

from sttool.models.vit import attend
from tests.helpers import make_tiny_vit


def materialised_attention(attn, x):
    """Explicit softmax(QK^T / sqrt(d)) of timm's Attention weights, all rows: (B, H, N, N)."""
    B, N, C = x.shape
    q, k, _ = attn.qkv(x).reshape(B, N, 3, attn.num_heads, -1).permute(2, 0, 3, 1, 4)
    return (q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5).softmax(-1)


def test_cls_row_equals_materialised_row_and_output_equals_timm():
    vit = make_tiny_vit()
    attn = vit.blocks[3].attn
    x = torch.randn(2, 17, 48)
    out, row = attend(attn, x, cls_row=True)
    full = materialised_attention(attn, x)
    torch.testing.assert_close(row, full[:, :, 0].mean(1), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(out, attn(x), atol=1e-5, rtol=1e-5)


def test_explicit_path_gives_the_same_row_and_output():
    vit = make_tiny_vit()
    attn = vit.blocks[0].attn
    x = torch.randn(2, 17, 48)
    fused_out, fused_row = attend(attn, x, cls_row=True)
    attn.fused_attn = False
    out, row = attend(attn, x, cls_row=True)
    torch.testing.assert_close(out, fused_out, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(row, fused_row, atol=1e-6, rtol=1e-5)
