"""Profiling: GFLOPs, parameters and tokens per stage (``gflops``), throughput, training-step memory
and time (``training_step``), early-exit costs (``exits``) and the whole ``sttool profile`` report
(``report``, imported from its module: it reaches into the engine, which imports this package)."""

from sttool.profiling.gflops import gflops_report

__all__ = ["gflops_report"]
