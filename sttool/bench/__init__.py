"""Benchmarks of many runs: a VTAB-style suite of tasks x methods x seeds under one honest protocol."""

from sttool.bench.run import bench
from sttool.bench.suite import Suite, load_suite

__all__ = ["Suite", "bench", "load_suite"]
