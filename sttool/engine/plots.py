"""Training curves of a run folder (loss and validation accuracy per epoch), if matplotlib is installed."""

from __future__ import annotations

from rich.console import Console

from sttool.engine.run_dir import RunDir

PLOTS_HINT = "plots need matplotlib: pip install 'sttool[plots]'"


def plot_run(run_dir: RunDir, console: Console) -> None:
    """Write ``plots/curves.png``; without matplotlib, say how to get it and go on."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        console.print(f"note: no training curves written; {PLOTS_HINT}", highlight=False)
        return
    train = [r for r in run_dir.records() if r.get("event") == "train"]
    if not train:
        return
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(9, 3.5))
    loss_ax.plot([r["epoch"] for r in train], [r["loss"] for r in train], marker="o")
    loss_ax.set(xlabel="epoch", ylabel="training loss", title="loss")
    val = [r for r in train if "val" in r]
    acc_ax.plot([r["epoch"] for r in val], [r["val"]["top1"] for r in val], marker="o", color="tab:green")
    acc_ax.set(xlabel="epoch", ylabel="top-1 (%)", title="validation accuracy")
    fig.tight_layout()
    out = run_dir.path / "plots" / "curves.png"
    out.parent.mkdir(exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
