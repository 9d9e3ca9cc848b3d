"""Profiling: analytic GFLOPs, parameters and tokens per stage (``flops``), throughput, training-step
memory and time (``training_step``), and the whole ``sttool profile`` report (``report``)."""

from sttool.profiling.flops import FlopCount, count_flops, gflops_report

__all__ = ["FlopCount", "count_flops", "gflops_report"]
