"""The one timm behaviour sttool changes: a ViT block that can prune tokens and run an adapter.

``SparseBlock`` is timm's ``Block`` with a new ``forward``; ``patch_model`` swaps the class of existing
blocks in place and attaches the new modules, so timm's parameters and state_dict keys stay as they are.
"""

from __future__ import annotations

from timm.models.vision_transformer import Block
from torch import Tensor, nn

from sttool.models.attention import attend
from sttool.models.state import ForwardState
from sttool.models.token_selection import select_tokens


class SparseBlock(Block):
    """Pre-norm block: attention, token selection (pruning blocks only), then MLP beside an adapter.

    Attributes set by ``patch_model``: ``keep_rate`` (None: this block keeps every token),
    ``fuse_token``, ``num_prefix``, ``adapter`` and ``lora`` (None when unused).
    """

    keep_rate: float | None
    fuse_token: bool
    num_prefix: int
    adapter: nn.Module | None
    lora: nn.Module | None

    def forward(self, x: Tensor, state: ForwardState | None = None, **_: object) -> Tensor:
        state = ForwardState() if state is None else state
        prunes = self.keep_rate is not None
        attn_out, cls_attn = attend(self.attn, self.norm1(x), self.lora, cls_row=prunes)
        x = x + self.drop_path1(self.ls1(attn_out))  # (B, N, C)
        selection = None
        if prunes:
            selection = select_tokens(cls_attn, self.keep_rate, self.num_prefix, self.fuse_token)
            if selection is not None:
                x = selection.apply(x)  # (B, N', C)
                state.on_select(selection)
        state.selections.append(selection)
        out = x + self.drop_path2(self.ls2(self.mlp(self.norm2(x))))
        if self.adapter is not None:
            out = out + self.adapter(x, state)
        return out
