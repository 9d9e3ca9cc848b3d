"""The patched timm VisionTransformer: its forward loop and the official code's classification head.

``patch_model`` swaps a timm ``VisionTransformer`` to ``SparseViT`` in place; weights, buffers and
state_dict keys are timm's, plus the adapters and ``head_norm`` that sttool adds.
"""

from __future__ import annotations

from timm.models.vision_transformer import VisionTransformer
from torch import Tensor, nn

from sttool.models.config import ModelConfig
from sttool.models.state import ForwardState
from sttool.models.video import embed_video


class SparseViT(VisionTransformer):
    """A timm ViT running ``SparseBlock``s. Never constructed directly: made by ``patch_model``.

    The head follows the official code: the final [CLS] token, BatchNorm without affine parameters
    (``head_norm``; Identity for ``head='linear'``), then the Linear ``head``.
    """

    sttool_config: ModelConfig
    head_norm: nn.Module

    def embed(self, x: Tensor) -> Tensor:
        """Patch embedding, prefix tokens and position embedding: images (B, 3, H, W) -> (B, N, C).

        A video model (``num_frames`` set) takes clips (B, 3, T, H, W) and embeds space-time tokens.
        """
        if getattr(self, "time_embed", None) is not None:
            return embed_video(self, x)
        x = self.patch_embed(x)
        x = self._pos_embed(x)
        x = self.patch_drop(x)
        return self.norm_pre(x)

    def initial_history(self, tokens: Tensor) -> list[Tensor]:
        """Adapter history before block 1: the released variant re-adds the embedding at its first stage end."""
        return [tokens] if self.sttool_config.spec.adapter == "stage" else []

    def forward_features(self, x: Tensor, state: ForwardState | None = None, **_: object) -> Tensor:
        """Tokens after the final norm (B, N_last, C); ``state`` receives the selections if given."""
        x = self.embed(x)
        state = ForwardState() if state is None else state
        state.history = self.initial_history(x)
        for block in self.blocks:
            x = block(x, state)
        return self.norm(x)

    def pool_tokens(self, x: Tensor) -> Tensor:
        """The [CLS] token (B, C), or the mean of the other tokens for average-pooled backbones."""
        if self.global_pool == "token":
            return x[:, 0]
        return x[:, self.num_prefix_tokens :].mean(dim=1)

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        x = self.fc_norm(self.pool_tokens(x))
        x = self.head_drop(self.head_norm(x))
        return x if pre_logits else self.head(x)

    def forward(self, x: Tensor, **_: object) -> Tensor:
        return self.forward_head(self.forward_features(x))

    def forward_exits(self, x: Tensor) -> list[tuple[Tensor, Tensor]]:
        """(features, logits) of every exit for every sample, the final head last (training, anytime)."""
        exits = self.exits
        tokens = self.embed(x)
        state = ForwardState(history=self.initial_history(tokens))
        outputs = []
        for index, block in enumerate(self.blocks):
            tokens = block(tokens, state)
            if index in exits.blocks:
                outputs.append(exits(exits.blocks.index(index), tokens, self.num_prefix_tokens))
        features = self.fc_norm(self.pool_tokens(self.norm(tokens)))  # (B, C)
        outputs.append((features, self.head(self.head_drop(self.head_norm(features)))))
        return outputs
