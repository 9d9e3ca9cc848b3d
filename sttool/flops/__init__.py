"""FLOP counting in the papers' convention (multiply-adds)."""

from sttool.flops.count import FlopCount, count_flops

__all__ = ["FlopCount", "count_flops"]
