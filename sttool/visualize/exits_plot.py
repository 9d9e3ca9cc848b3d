"""``sttool visualize exits``: where samples leave at the operating point, and each exit's top-1."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sttool.plotting import PLOTS_DIR, pyplot, save
from sttool.profiling.exits import exits_profile


def exit_labels(exit_layers: list[int]) -> list[str]:
    return [f"block {layer}" for layer in exit_layers] + ["final"]


def plot_exits(run_dir: Path, out_dir: Path | None = None) -> dict[str, Any]:
    """Write ``exits.png`` (under ``run_dir/plots`` unless ``out_dir``); returns the numbers plotted and its path."""
    profile = exits_profile(run_dir)
    plt = pyplot()
    labels = exit_labels(profile["exit_layers"])
    positions = list(range(len(labels)))
    point, split = profile["operating_point"], profile["split"]
    figure, (share_ax, top_ax) = plt.subplots(1, 2, figsize=(10, 3.8))
    if point is not None:
        shares = [100 * f for f in point[split]["exit_fractions"]]
        share_ax.bar(positions, shares, color="tab:blue")
        share_ax.set_title(f"exit histogram at the operating point ({split}): {profile['expected_gflops']:.3g} GFLOPs, "
                           f"{100 * profile['expected_ratio']:.0f}% of no exit", fontsize=9)
    else:
        share_ax.text(0.5, 0.5, "no operating point meets the rule", ha="center", va="center", transform=share_ax.transAxes)
        share_ax.set_title("exit histogram at the operating point", fontsize=9)
    share_ax.set(xticks=positions, xticklabels=labels, ylabel="samples leaving here (%)")
    width = 0.4
    tops = profile["per_exit_top1"]
    for offset, name, color in ((-width / 2, "val", "tab:green"), (width / 2, "test", "tab:orange")):
        if name in tops:
            top_ax.bar([x + offset for x in positions], tops[name], width, label=name, color=color)
    top_ax.set(xticks=positions, xticklabels=labels, ylabel="top-1 (%)")
    top_ax.set_title("top-1 of each exit on every sample", fontsize=9)
    top_ax.legend()
    png = save(figure, out_dir if out_dir is not None else run_dir / PLOTS_DIR, "exits.png")
    return {"png": str(png), **profile}
