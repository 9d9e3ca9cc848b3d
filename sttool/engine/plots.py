"""Training curves of a run folder (loss and validation accuracy per epoch), if matplotlib is installed."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape

from sttool.engine.run_dir import RunDir
from sttool.errors import SttoolError
from sttool.plotting import PLOTS_DIR, pyplot, save


def plot_run(run_dir: RunDir, console: Console) -> None:
    """Write ``plots/curves.png``; without matplotlib, say how to get it and go on."""
    train = [r for r in run_dir.records() if r.get("event") == "train"]
    if not train:
        return
    try:
        plt = pyplot()
    except SttoolError as err:
        console.print(f"note: no training curves written; {escape(str(err))}", highlight=False)
        return
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(9, 3.5))
    loss_ax.plot([r["epoch"] for r in train], [r["loss"] for r in train], marker="o")
    loss_ax.set(xlabel="epoch", ylabel="training loss", title="loss")
    val = [r for r in train if "val" in r]
    acc_ax.plot([r["epoch"] for r in val], [r["val"]["top1"] for r in val], marker="o", color="tab:green")
    acc_ax.set(xlabel="epoch", ylabel="top-1 (%)", title="validation accuracy")
    save(fig, run_dir.path / PLOTS_DIR, "curves.png")
