"""Token selection with EViT semantics: keep the tokens [CLS] attends to most, fuse the rest into one.

In a pruning block (after the attention residual, before the MLP) the candidate tokens (all but the
prefix tokens, [CLS] first) are scored by the [CLS] row of that block's attention, post-softmax and
averaged over heads. The top ``ceil(keep_rate * M)`` candidates are kept, ordered by descending score
as ``torch.topk`` returns them; the others are summed into one fused token, weighted by their scores
(not renormalised). A fused token from an earlier stage is an ordinary candidate later, as in EViT.

Dense Adapters reuse the same selection on earlier adapter outputs, so it is an object with ``apply``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor


def keep_count(num_candidates: int, keep_rate: float) -> int:
    """Number of candidate tokens kept: ``ceil(keep_rate * M)``, exactly as EViT and the official code.

    The product is taken in floating point on purpose (``0.7 * 100`` rounds up to 71 there too), so
    token counts match the reference implementations bit for bit.
    """
    return math.ceil(keep_rate * num_candidates)


def tokens_after(num_tokens: int, keep_rate: float, num_prefix: int = 1, fuse: bool = True) -> int:
    """Token count after a pruning block that receives ``num_tokens`` tokens (prefix included)."""
    candidates = num_tokens - num_prefix
    kept = keep_count(candidates, keep_rate)
    if kept >= candidates:
        return num_tokens
    return num_prefix + kept + int(fuse)


@dataclass
class TokenSelection:
    """The keep-and-fuse decision of one block, applicable to any tensor over the same tokens."""

    index: Tensor  # (B, K) kept candidate indices, by descending score
    fuse_weights: Tensor | None  # (B, M) candidate scores with kept ones zeroed; None drops the rest
    num_prefix: int
    num_tokens: int  # N, the token count of the tensors the selection applies to
    rows: Tensor = field(init=False, repr=False)  # flat rows of the prefix and kept tokens in the flattened batch

    def __post_init__(self) -> None:
        # computed once, eagerly (no cached property, which graph compilers cannot trace): whole rows are
        # copied by ``apply`` for the tokens and for every cached adapter output alike
        B = self.index.shape[0]
        prefix = torch.arange(self.num_prefix, device=self.index.device).expand(B, -1)  # (B, P)
        per_sample = torch.cat([prefix, self.index + self.num_prefix], dim=1)  # (B, P + K)
        offsets = torch.arange(B, device=self.index.device).unsqueeze(1) * self.num_tokens  # (B, 1)
        self.rows = (per_sample + offsets).reshape(-1)

    def apply(self, x: Tensor) -> Tensor:
        """Keep the prefix and the selected tokens of ``x`` and append the fused token."""
        B, N, C = x.shape
        kept = x.reshape(B * N, C).index_select(0, self.rows).view(B, -1, C)  # (B, P + K, C)
        if self.fuse_weights is None:
            return kept
        weights = self.fuse_weights.to(x.dtype).unsqueeze(1)  # (B, 1, M)
        fused = weights @ x[:, self.num_prefix :]  # (B, 1, C)
        return torch.cat([kept, fused], dim=1)  # (B, P + K + 1, C)

    def index_select(self, batch_index: Tensor) -> TokenSelection:
        """The same selection restricted to some samples of the batch (early-exit compaction)."""
        weights = None if self.fuse_weights is None else self.fuse_weights[batch_index]
        return TokenSelection(self.index[batch_index], weights, self.num_prefix, self.num_tokens)


def select_tokens(cls_attn: Tensor, keep_rate: float, num_prefix: int = 1, fuse: bool = True) -> TokenSelection | None:
    """Choose the tokens to keep from the head-averaged [CLS] attention row ``cls_attn`` (B, N).

    Returns None when nothing would be dropped (keep_rate 1, or too few tokens).
    """
    scores = cls_attn[:, num_prefix:]  # (B, M) scores of the candidate tokens
    kept = keep_count(scores.shape[1], keep_rate)
    if kept >= scores.shape[1]:
        return None
    index = scores.topk(kept, dim=1, largest=True, sorted=True).indices  # (B, K)
    fuse_weights = scores.scatter(1, index, 0.0) if fuse else None  # (B, M)
    return TokenSelection(index, fuse_weights, num_prefix, cls_attn.shape[1])
