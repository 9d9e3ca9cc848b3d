"""Self-attention over timm's ``Attention`` weights that can also return the [CLS] attention row.

The output keeps using fused scaled-dot-product attention, which never materialises the attention
map. Token selection needs only the [CLS] row, so it is computed on its own: ``softmax(q_cls K^T)``
costs one query against N keys and equals row 0 of the full map. ``attn.fused_attn = False`` (timm's
own switch) selects the explicit path, for operator-level FLOP counting and for reference tests.
"""

from __future__ import annotations

import torch.nn.functional as F
from timm.layers import Attention
from torch import Tensor, nn


def attend(attn: Attention, x: Tensor, lora: nn.Module | None = None, cls_row: bool = False) -> tuple[Tensor, Tensor | None]:
    """Multi-head self-attention of ``x`` (B, N, C) with ``attn``'s weights.

    Returns the projected output (B, N, C) and, if ``cls_row``, the head-averaged attention of
    token 0 over all N tokens (B, N), post-softmax.
    """
    B, N, _ = x.shape
    heads = attn.num_heads
    qkv = attn.qkv(x)  # (B, N, 3 * A)
    if lora is not None:
        qkv = lora(x, qkv)
    q, k, v = qkv.reshape(B, N, 3, heads, -1).permute(2, 0, 3, 1, 4).unbind(0)  # each (B, H, N, d)
    q, k = attn.q_norm(q), attn.k_norm(k)
    row = None
    if attn.fused_attn:
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=attn.attn_drop.p if attn.training else 0.0)
        if cls_row:
            logits = (q[:, :, :1] * attn.scale) @ k.transpose(-2, -1)  # (B, H, 1, N)
            row = logits.float().softmax(dim=-1).mean(dim=1).squeeze(1)  # (B, N)
    else:
        weights = ((q * attn.scale) @ k.transpose(-2, -1)).softmax(dim=-1)  # (B, H, N, N)
        weights = attn.attn_drop(weights)
        out = weights @ v  # (B, H, N, d)
        if cls_row:
            row = weights[:, :, 0].float().mean(dim=1)  # (B, N)
    out = out.transpose(1, 2).reshape(B, N, -1)  # (B, N, A)
    norm = getattr(attn, "norm", None)
    if norm is not None:
        out = norm(out)
    return attn.proj_drop(attn.proj(out)), row
