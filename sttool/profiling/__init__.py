"""Profiling: GFLOPs, parameters and tokens per stage (throughput and memory build on these)."""

from sttool.profiling.gflops import gflops_report

__all__ = ["gflops_report"]
