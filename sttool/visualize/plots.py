"""Plots of a run (matplotlib, the optional ``plots`` extra, imported only when a plot is drawn): training
curves, the exit histogram and each exit's top-1, and accuracy against GFLOPs."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

from sttool.errors import SttoolError
from sttool.profiling.report import exits_profile
from sttool.runs.folder import PLOTS_DIR, RunDir

PLOTS_HINT = "plots need matplotlib: pip install 'sttool[plots]'"


def pyplot() -> ModuleType:
    """``matplotlib.pyplot`` on the file-only Agg backend, or a one-line error saying how to install it."""
    try:
        import matplotlib
    except ImportError:
        raise SttoolError(PLOTS_HINT) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(figure, out_dir: Path, name: str) -> Path:
    """Write ``figure`` as ``out_dir/name`` (the folder is created) and close it."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / name
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    pyplot().close(figure)
    return path


def plot_run(run_dir: RunDir) -> Path | None:
    """Write ``plots/curves.png`` (training loss and validation top-1 per epoch); None when the run has no
    epochs yet. Raises SttoolError without matplotlib."""
    train = [r for r in run_dir.records() if r.get("event") == "train"]
    if not train:
        return None
    plt = pyplot()
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(9, 3.5))
    loss_ax.plot([r["epoch"] for r in train], [r["loss"] for r in train], marker="o")
    loss_ax.set(xlabel="epoch", ylabel="training loss", title="loss")
    val = [r for r in train if "val" in r]
    acc_ax.plot([r["epoch"] for r in val], [r["val"]["top1"] for r in val], marker="o", color="tab:green")
    acc_ax.set(xlabel="epoch", ylabel="top-1 (%)", title="validation accuracy")
    return save(fig, run_dir.path / PLOTS_DIR, "curves.png")


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
