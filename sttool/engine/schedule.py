"""Per-iteration learning rate: linear warm-up from 0, then half-cosine to ``min_lr`` (MAE style)."""

from __future__ import annotations

import math


def learning_rate(step: int, total_steps: int, warmup_steps: int, peak: float, floor: float = 0.0) -> float:
    """Learning rate of optimiser step ``step`` (0-based) out of ``total_steps``."""
    if step < warmup_steps:
        return peak * step / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return floor + (peak - floor) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
