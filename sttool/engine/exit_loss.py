"""Training objective of a multi-exit model: weighted exit losses, graph regularisation, self-distillation.

    L = sum_k w_k CE(z_k, t) / sum_k w_k
        + lambda_g * sum_{k<K} G(f_k)                        (optional graph regularisation)
        + lambda_d * sum_{k<K} T^2 KL(softmax(z_K / T) || softmax(z_k / T))   (optional, z_K detached)

G(f) = sum_ij W_ij ||f_i/|f_i| - f_j/|f_j|||^2 / sum_ij W_ij is the Laplacian smoothness of the
normalised early-exit features over a graph of the batch: W_ij = <t_i, t_j> from the (soft, mixed)
targets, so samples of a class are pulled together, or W_ij = max(0, cos(f_K,i, f_K,j)) from the
last exit's features. MET's abstract names graph regularisation of early-exit features; this form is ours.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sttool.config.exits import ExitsConfig
from sttool.engine.mixup import soft_cross_entropy
from sttool.errors import SttoolError


def graph_smoothness(features: Tensor, weights: Tensor) -> Tensor:
    """Weighted mean squared distance between normalised features (B, C) over a graph (B, B)."""
    unit = F.normalize(features.float(), dim=-1)
    distances = torch.cdist(unit, unit).pow(2)  # (B, B)
    weights = weights * (1 - torch.eye(weights.shape[0], device=weights.device))
    return (weights * distances).sum() / weights.sum().clamp_min(1e-6)


class MultiExitLoss(nn.Module):
    """The loss above, from every exit's (features, logits) and soft targets."""

    def __init__(self, config: ExitsConfig, num_exits: int) -> None:
        super().__init__()
        weights = config.loss_weights or [1.0] * num_exits
        if len(weights) != num_exits:
            raise SttoolError(
                f"exits.loss_weights: {len(weights)} weights for {num_exits} exits (early exits and the final head)"
            )
        self.weights = [w / sum(weights) for w in weights]
        self.config = config

    def forward(self, outputs: list[tuple[Tensor, Tensor]], targets: Tensor) -> Tensor:
        config = self.config
        loss = sum(w * soft_cross_entropy(logits, targets) for w, (_, logits) in zip(self.weights, outputs, strict=True))
        final_features, final_logits = outputs[-1]
        if config.graph != "none" and config.graph_weight > 0 and targets.shape[0] > 1:
            if config.graph == "labels":
                graph = targets @ targets.T
            else:
                unit = F.normalize(final_features.detach().float(), dim=-1)
                graph = (unit @ unit.T).clamp_min(0)
            loss = loss + config.graph_weight * sum(graph_smoothness(f, graph) for f, _ in outputs[:-1])
        if config.distill_weight > 0:
            temperature = config.distill_temperature
            teacher = (final_logits.detach().float() / temperature).softmax(dim=-1)
            for _, logits in outputs[:-1]:
                student = (logits.float() / temperature).log_softmax(dim=-1)
                loss = loss + config.distill_weight * temperature**2 * F.kl_div(student, teacher, reduction="batchmean")
        return loss


class ExitsForward(nn.Module):
    """Training view of a multi-exit model: ``forward`` returns every exit (DDP wraps this module)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> list[tuple[Tensor, Tensor]]:
        return self.model.forward_exits(x)
