"""What flows from block to block beside the tokens: earlier adapter outputs and the selections made."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor

from sttool.models.token_selection import TokenSelection


@dataclass
class ForwardState:
    """Per-forward state shared by the blocks of one model.

    ``history`` holds earlier adapter outputs that later adapters read (the Dense Adapter's cache, or
    the released variant's running stage sum). It is always kept at the current token set: every
    token selection is applied to it, and early-exit compaction restricts it to the surviving samples.
    """

    history: list[Tensor] = field(default_factory=list)
    selections: list[TokenSelection | None] = field(default_factory=list)

    def on_select(self, selection: TokenSelection) -> None:
        """Bring the cached adapter outputs to the token set the block just kept."""
        self.history = [selection.apply(h) for h in self.history]

    def index_select(self, batch_index: Tensor) -> None:
        """Keep only the samples in ``batch_index`` (the ones that did not exit)."""
        self.history = [h[batch_index] for h in self.history]
