"""What a bench leaves: ``results.csv`` (one row per task, method, seed), ``summary.md`` (VTAB's table:
a column per task, the group means and both overall means, named, mean ± sd over seeds) and
``accuracy_vs_gflops.png``.

VTAB papers report two different means: the mean of the three group means (NOAH, SSF, FacT, DyT) and
the plain mean over tasks; both are written, each under its own name. A group mean is taken per seed
first, then its mean ± sd over seeds, so the spread is the seeds' and not the tasks'.
"""

from __future__ import annotations

import csv
import io
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from sttool.bench.suite import Suite
from sttool.runs.folder import write_text
from sttool.visualize.plots import pyplot, save

CSV_COLUMNS = ("task", "group", "method", "seed", "top1", "gflops", "gflops_ratio", "trainable_params",
               "train_seconds", "grid_seconds", "chosen", "epochs")


SINGLE = ("GFLOPs ratio", "trainable (M)")  # columns of one figure per method (mean over tasks), not per seed


def write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, buffer.getvalue())


def mean_sd(values: list[float]) -> str:
    """``mean ± sd`` (sample sd over seeds); the mean alone for one value."""
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}"


def summary_table(rows: list[dict[str, Any]], suite: Suite, methods: list[str], tasks: list[str]) -> dict[str, dict[str, list[float]]]:
    """Per method, per column (each task, each group with all its tasks run, the two means, the GFLOPs
    ratio): the per-seed values that the summary's ``mean ± sd`` is taken over."""
    top1: dict[tuple[str, str, int], float] = {(r["method"], r["task"], int(r["seed"])): float(r["top1"]) for r in rows}
    ratio: dict[str, list[float]] = defaultdict(list)
    trainable: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        ratio[r["method"]].append(float(r["gflops_ratio"]))
        trainable[r["method"]].append(float(r["trainable_params"]) / 1e6)
    groups = {g: [t for t in ts if t in tasks] for g, ts in suite.groups.items()}
    groups = {g: ts for g, ts in groups.items() if ts}
    table: dict[str, dict[str, list[float]]] = {}
    for method in methods:
        seeds = sorted({s for (m, _, s) in top1 if m == method})
        complete = [s for s in seeds if all((method, t, s) in top1 for t in tasks)]
        columns: dict[str, list[float]] = {t: [top1[(method, t, s)] for s in seeds if (method, t, s) in top1] for t in tasks}
        for group, members in groups.items():
            columns[f"{group} mean"] = [statistics.mean(top1[(method, t, s)] for t in members) for s in complete]
        columns["mean of group means"] = [statistics.mean(statistics.mean(top1[(method, t, s)] for t in members)
                                                          for members in groups.values()) for s in complete]
        columns[f"mean of {len(tasks)} tasks"] = [statistics.mean(top1[(method, t, s)] for t in tasks) for s in complete]
        columns["GFLOPs ratio"] = [statistics.mean(ratio[method])] if ratio[method] else []
        columns["trainable (M)"] = [statistics.mean(trainable[method])] if trainable[method] else []
        table[method] = columns
    return table


def write_summary(rows: list[dict[str, Any]], suite: Suite, methods: list[str], tasks: list[str], path: Path,
                  header: str) -> dict[str, dict[str, list[float]]]:
    """``summary.md``: the table in VTAB's layout; returns the values behind it."""
    table = summary_table(rows, suite, methods, tasks)
    columns = list(next(iter(table.values()))) if table else []
    seeds = sorted({int(r["seed"]) for r in rows})
    lines = [f"# {suite.name}: test top-1 (%)", "", header, "",
             f"Seeds {', '.join(map(str, seeds))}: mean ± sd over seeds (a group mean or overall mean is taken per seed first; "
             "'-' where a seed misses a task). 'mean of group means' is the VTAB papers' usual average; "
             f"'mean of {len(tasks)} tasks' the plain one. GFLOPs ratio: the method's GFLOPs over the dense backbone's; trainable (M): parameters trained, head included (means over tasks).", "",
             "| method | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for method, values in table.items():
        cells = [f"{values[c][0]:.{3 if c.startswith('trainable') else 2}f}" if c in SINGLE and values[c] else mean_sd(values[c])
                 for c in columns]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    write_text(path, "\n".join(lines) + "\n")
    return table


def plot_accuracy_gflops(table: dict[str, dict[str, list[float]]], mean_column: str, out: Path) -> Path:
    """``accuracy_vs_gflops.png``: each method's mean test top-1 against its GFLOPs ratio."""
    plt = pyplot()
    figure, ax = plt.subplots(figsize=(6.4, 4.2))
    for method, values in table.items():
        if values[mean_column] and values["GFLOPs ratio"]:
            x, y = values["GFLOPs ratio"][0], statistics.mean(values[mean_column])
            sd = statistics.stdev(values[mean_column]) if len(values[mean_column]) > 1 else 0.0
            ax.errorbar([x], [y], yerr=[sd], marker="o", capsize=3, label=method)
    ax.set(xlabel="GFLOPs / dense backbone's GFLOPs", ylabel=f"{mean_column}, test top-1 (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save(figure, out, "accuracy_vs_gflops.png")
