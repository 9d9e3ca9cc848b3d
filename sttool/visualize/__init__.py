"""Pictures and plots: the tokens each pruning stage kept (PIL only), and, from a run folder, the exit
histogram and accuracy against GFLOPs (matplotlib, the optional ``plots`` extra, imported when drawn)."""

from sttool.data.inputs import Preprocess, read_sample
from sttool.visualize.keep_rate_sweep import keep_rate_sweep, set_keep_rate, tradeoff_report
from sttool.visualize.kept_tokens import (
    KeptStage,
    ModelChoice,
    ModelLoader,
    average_object_shares,
    kept_tokens_figure,
    trace_selections,
    track_kept_tokens,
    visualize_kept_tokens,
)
from sttool.visualize.plots import plot_exits, plot_tradeoff

__all__ = [
    "KeptStage",
    "ModelChoice",
    "ModelLoader",
    "Preprocess",
    "average_object_shares",
    "keep_rate_sweep",
    "kept_tokens_figure",
    "plot_exits",
    "plot_tradeoff",
    "read_sample",
    "set_keep_rate",
    "trace_selections",
    "track_kept_tokens",
    "tradeoff_report",
    "visualize_kept_tokens",
]
