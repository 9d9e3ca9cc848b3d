"""``sttool visualize tradeoff``: top-1 against GFLOPs, over keep rates and over exit thresholds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sttool.plotting import PLOTS_DIR, pyplot, save


def plot_tradeoff(report: dict[str, Any], out_dir: Path | None = None) -> Path:
    """Write ``tradeoff.png`` (under the run's ``plots`` unless ``out_dir``) from ``tradeoff_report``'s numbers."""
    plt = pyplot()
    figure, ax = plt.subplots(figsize=(6.4, 4.2))
    curve = report["keep_rate_curve"]
    ax.plot([p["gflops"] for p in curve], [p["top1"] for p in curve], marker="o", label="keep rate at inference")
    for point in curve:
        ax.annotate(f"{point['keep_rate']:g}", (point["gflops"], point["top1"]), textcoords="offset points",
                    xytext=(4, -10), fontsize=8)
    tuned = [p for p in curve if abs(p["keep_rate"] - report["tuned_keep_rate"]) < 1e-9]
    if tuned:
        ax.scatter([tuned[0]["gflops"]], [tuned[0]["top1"]], marker="*", s=180, color="tab:red", zorder=3,
                   label=f"as tuned (keep {report['tuned_keep_rate']:g})")
    if report["exit_curve"]:
        points = sorted(report["exit_curve"], key=lambda p: p["gflops"])
        ax.plot([p["gflops"] for p in points], [p["top1"] for p in points], marker=".", color="tab:green",
                label="early exits (thresholds from val)")
    ax.set(xlabel="GFLOPs per view (multiply-adds)", ylabel=f"{report['split']} top-1 (%)")
    ax.set_title(f"accuracy against compute: {Path(report['run_dir']).name}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save(figure, out_dir if out_dir is not None else Path(report["run_dir"]) / PLOTS_DIR, "tradeoff.png")
