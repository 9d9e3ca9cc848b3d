"""Sparse-Tuning models composed on timm's VisionTransformer."""

from sttool.models import micro  # noqa: F401  (registers the micro backbones in timm)
from sttool.models.build import build_model, count_parameters, patch_model, trainable_parameters
from sttool.models.config import METHODS, ModelConfig
from sttool.models.token_selection import TokenSelection, select_tokens, tokens_after
from sttool.models.vit import ForwardState, SparseViT

__all__ = [
    "METHODS",
    "ForwardState",
    "ModelConfig",
    "SparseViT",
    "TokenSelection",
    "build_model",
    "count_parameters",
    "patch_model",
    "select_tokens",
    "tokens_after",
    "trainable_parameters",
]
