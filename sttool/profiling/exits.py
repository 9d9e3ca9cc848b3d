"""Expected GFLOPs of a multi-exit run at its calibrated thresholds, read from the run's exits.json.

The thresholds were fitted on the validation split (MSDNet's budgeted batch classification); the
expected cost is the test split's when the run has one: sum over exits of (share leaving there) x
(cumulative cost to that exit, every exit evaluated on the way included).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sttool.engine.exits_run import read_exits
from sttool.engine.run_dir import EXITS_FILE
from sttool.errors import SttoolError


def require_exits(run_dir: Path) -> dict[str, Any]:
    """The run's exits.json, or an error naming the missing file and how runs get one."""
    if not run_dir.is_dir():
        raise SttoolError(f"no run folder at {run_dir}")
    exits = read_exits(run_dir)
    if exits is None:
        raise SttoolError(f"{run_dir / EXITS_FILE} not found: this run has no calibrated exits "
                          "(train with model.exit_layers set, e.g. [4, 8])")
    return exits


def exits_profile(run_dir: Path) -> dict[str, Any]:
    """Per-exit costs and accuracy, and the expected GFLOPs at the operating point against no early exit."""
    exits = require_exits(run_dir)
    point = exits.get("operating_point")
    split = "test" if point is not None and "test" in point else "val"
    expected = point[split]["gflops"] if point is not None else None
    return {
        "exit_layers": exits["exit_layers"],
        "cost_to_exit_gflops": exits["cost_to_exit_gflops"],
        "per_exit_top1": exits["per_exit_top1"],
        "no_exit_gflops": exits["no_exit_gflops"],
        "rule": exits["rule"],
        "operating_point": point,
        "split": split,
        "expected_gflops": expected,
        "expected_ratio": None if expected is None else expected / exits["no_exit_gflops"],
    }
