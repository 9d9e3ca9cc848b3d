"""GFLOPs, tokens per stage and parameter counts of a configuration beside its dense backbone."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch

from sttool.config.schema import to_dict
from sttool.flops import count_flops
from sttool.models.build import build_model, count_parameters
from sttool.models.config import ModelConfig


def model_figures(model: torch.nn.Module) -> dict[str, Any]:
    """GFLOPs (multiply-adds), tokens per stage and parameter counts of one built model."""
    flops = count_flops(model)
    params = count_parameters(model)
    return {
        "gflops": flops.gflops,
        "tokens_per_stage": flops.tokens_per_stage,
        "gflops_by_part": {part: macs / 1e9 for part, macs in flops.by_part.items()},
        "params_total": params["total"],
        "params_trainable": params["trainable"],
        "params_trainable_no_head": params["trainable_no_head"],
    }


def baseline_config(config: ModelConfig, method: str) -> ModelConfig:
    """The same backbone and input with another method at that method's own defaults, without exits."""
    return replace(config, method=method, keep_rate=None, bottleneck=None, adapter_scale=None,
                   adapter_dropout=None, exit_layers=[], weights=None)


def gflops_report(config: ModelConfig) -> dict[str, Any]:
    """Figures of ``config``'s model and of the dense backbone it is built on (same input, no
    sparsification, no adapters, no exits: full fine-tuning's model).

    Models are built on the meta device: shapes only, no weights are created or downloaded.
    """
    config = replace(config, weights=None)
    with torch.device("meta"):
        model = build_model(config=config)
        dense = build_model(config=baseline_config(config, "full"))
    figures = model_figures(model)
    dense_figures = model_figures(dense)
    return {
        **figures,
        "dense_gflops": dense_figures["gflops"],
        "gflops_ratio": figures["gflops"] / dense_figures["gflops"],
        "dense": dense_figures,
        "model": to_dict(model.sttool_config),
    }
