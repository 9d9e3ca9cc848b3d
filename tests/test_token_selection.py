"""Token selection against a plain per-sample reference, and the token counts of the paper."""

import math

import pytest
import torch

from sttool.models.token_selection import TokenSelection, select_tokens, tokens_after


def reference_keep_and_fuse(x: torch.Tensor, cls_attn: torch.Tensor, keep_rate: float) -> torch.Tensor:
    """Slow EViT reference: one sample at a time, sort scores, keep the top ones, sum the rest."""
    out = []
    for tokens, attn in zip(x, cls_attn, strict=True):
        scores = attn[1:].tolist()
        order = sorted(range(len(scores)), key=lambda j: -scores[j])
        kept = order[: math.ceil(keep_rate * len(scores))]
        dropped = order[len(kept):]
        fused = sum(scores[j] * tokens[1 + j] for j in dropped)
        out.append(torch.stack([tokens[0], *[tokens[1 + j] for j in kept], fused]))
    return torch.stack(out)


@pytest.mark.parametrize("keep_rate", [0.5, 0.7, 0.9])
def test_keep_and_fuse_matches_reference(keep_rate):
    torch.manual_seed(0)
    x = torch.randn(3, 17, 8)
    cls_attn = torch.rand(3, 17).softmax(-1)
    selection = select_tokens(cls_attn, keep_rate)
    assert selection is not None
    torch.testing.assert_close(selection.apply(x), reference_keep_and_fuse(x, cls_attn, keep_rate))


def test_fused_weights_are_not_renormalised():
    x = torch.ones(1, 5, 2)
    cls_attn = torch.tensor([[0.5, 0.2, 0.15, 0.1, 0.05]])
    out = select_tokens(cls_attn, 0.5).apply(x)  # keeps 2 of 4 candidates, fuses 0.1 + 0.05
    assert out.shape == (1, 4, 2)
    torch.testing.assert_close(out[0, -1], torch.full((2,), 0.15))


def test_kept_tokens_are_ordered_by_score_and_prefix_kept():
    cls_attn = torch.tensor([[0.9, 0.01, 0.05, 0.03, 0.01]])
    x = torch.arange(5.0).view(1, 5, 1)
    selection = select_tokens(cls_attn, 0.5)
    assert selection.index.tolist() == [[1, 2]]  # candidates 2 then 3 (scores 0.05, 0.03)
    assert selection.apply(x)[0, :3, 0].tolist() == [0.0, 2.0, 3.0]


def test_no_fuse_drops_the_rest():
    cls_attn = torch.rand(2, 17).softmax(-1)
    selection = select_tokens(cls_attn, 0.7, fuse=False)
    assert selection.apply(torch.randn(2, 17, 4)).shape == (2, 1 + 12, 4)


def test_keep_rate_one_selects_nothing():
    assert select_tokens(torch.rand(2, 17), 1.0) is None


def test_extra_prefix_tokens_are_never_pruned():
    cls_attn = torch.tensor([[0.0, 0.0, 0.5, 0.3, 0.2]])  # 2 prefix tokens with zero score
    x = torch.arange(5.0).view(1, 5, 1)
    out = select_tokens(cls_attn, 0.5, num_prefix=2).apply(x)
    assert out[0, :, 0].tolist()[:4] == [0.0, 1.0, 2.0, 3.0]


@pytest.mark.parametrize(
    "keep_rate,expected",
    [(0.5, [197, 100, 52, 28]), (0.6, [197, 120, 74, 46]), (0.7, [197, 140, 100, 72]),
     (0.8, [197, 159, 129, 105]), (0.9, [197, 179, 163, 148])],
)
def test_vit_b_token_counts_follow_the_paper_table(keep_rate, expected):
    counts = [197]
    for _ in range(3):
        counts.append(tokens_after(counts[-1], keep_rate))
    assert counts == expected


def test_index_select_restricts_the_batch():
    cls_attn = torch.rand(4, 17).softmax(-1)
    x = torch.randn(4, 17, 3)
    selection = select_tokens(cls_attn, 0.7)
    part = selection.index_select(torch.tensor([1, 3]))
    assert isinstance(part, TokenSelection)
    torch.testing.assert_close(part.apply(x[[1, 3]]), selection.apply(x)[[1, 3]])
