"""``bench``: every (task, method, seed) cell of a suite, in order or in parallel processes, then the
results table, the summary and the plot. Cells already written are read back, so running the same
command again after a kill (or with more seeds or methods) trains only what is missing.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from datetime import date
from pathlib import Path
from typing import Any

from sttool.bench.protocol import Cell, run_cell
from sttool.bench.report import plot_accuracy_gflops, write_csv, write_summary
from sttool.bench.suite import Suite, check_names
from sttool.engine.sweep import parse_grid
from sttool.errors import SttoolError
from sttool.progress import SILENT, Progress
from sttool.runs.folder import cpu_name, git_commit


def grid_of(suite: Suite, method: str, grid: str) -> tuple[str, ...] | None:
    """``--grid``: ``suite`` (each method's own grid), ``none`` (its fixed value) or ``KEY=v1,v2`` /
    ``v1,v2`` (these values of the suite's grid key, for every method)."""
    if grid == "none":
        return None
    if grid == "suite":
        return suite.methods[method].grid or None
    key, values = parse_grid(grid if "=" in grid else f"{suite.grid_key}={grid}")
    if key != suite.grid_key:
        raise SttoolError(f"--grid '{grid}': the {suite.name} suite searches {suite.grid_key}; give {suite.grid_key}=v1,v2,...")
    return tuple(values)


def _init_worker(threads: int, devices: Any) -> None:
    """A worker's share of the machine: its CPU threads and, on a machine with GPUs, one GPU of its own
    (taken from ``devices``, a queue of GPU indices, before CUDA starts in this process)."""
    if devices is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(devices.get(timeout=60))
    import torch

    torch.set_num_threads(threads)


def _gpu_queue(context: Any, jobs: int) -> Any:
    """One GPU index per worker when the machine has at least ``jobs`` GPUs (None: no GPUs to share out)."""
    import torch

    count = torch.cuda.device_count()
    if count == 0:
        return None
    if jobs > count:
        raise SttoolError(f"--jobs {jobs}: this machine has {count} GPUs; give at most {count} (one process per GPU)")
    queue = context.Queue()
    for index in range(jobs):
        queue.put(index)
    return queue


def _cell_worker(suite: Suite, cell: Cell, out: Path, root: str, grid: tuple[str, ...] | None,
                 overrides: list[str]) -> dict[str, Any]:
    return run_cell(suite, cell, out, root, grid, overrides)


def bench(suite: Suite, out: Path, methods: list[str] | None = None, seeds: list[int] | None = None,
          tasks: list[str] | None = None, grid: str | None = None, quick: bool = False, root: str | None = None,
          jobs: int = 1, overrides: list[str] | None = None, progress: Progress = SILENT) -> dict[str, Any]:
    """Run the suite's cells and write ``OUT/results.csv``, ``OUT/summary.md`` and the plot; returns the
    rows and the summary's values. ``grid`` None: each method's grid, or its fixed value with ``quick``."""
    grid = grid or ("none" if quick else "suite")
    methods = list(methods or suite.default_methods)
    tasks = list(tasks or (suite.quick_tasks if quick else suite.tasks))
    check_names(suite, methods, "methods", "--methods")
    check_names(suite, tasks, "tasks", "--tasks")
    if jobs < 1:
        raise SttoolError(f"--jobs {jobs}: give 1 or more processes")
    tasks = [t for t in suite.tasks if t in tasks]  # the suite's group order
    seeds = list(seeds if seeds is not None else [0])
    root = root or suite.root
    if not Path(root).is_dir():
        make = {"micro-vtab": f"create it with 'sttool prepare synthetic --task micro-vtab --out {root}'",
                "transfer": f"create it with 'sttool prepare transfer --out {root}'"}
        raise SttoolError(f"--root {root}: no such folder; "
                          + make.get(suite.name, "give the folder of task folders in the VTAB-1K layout (<task>/train800.txt, ...)"))
    extra = [*(suite.quick_overrides if quick else ()), *(overrides or [])]
    grids = {m: grid_of(suite, m, grid) for m in methods}
    cells = [Cell(t, m, s) for t in tasks for m in methods for s in seeds]
    done = {c: json.loads(c.result_file(out).read_text()) for c in cells if c.result_file(out).is_file()}
    todo = [c for c in cells if c not in done]
    trainings = {c: len(grids[c.method] or ()) + 1 for c in todo}
    overall = progress.task(f"bench {suite.name}: trainings", sum(trainings.values()))
    if done:
        progress.note(f"{len(done)} of {len(cells)} cells already in {out}; running the other {len(todo)}")
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    if jobs == 1:
        for cell in todo:
            done[cell] = run_cell(suite, cell, out, root, grids[cell.method], extra, progress)
            overall.advance(trainings[cell])
    elif todo:
        threads = max(1, (os.cpu_count() or 1) // jobs)
        spawn = multiprocessing.get_context("spawn")
        devices = _gpu_queue(spawn, jobs)
        with ProcessPoolExecutor(jobs, spawn, _init_worker, (threads, devices)) as pool:
            futures = {pool.submit(_cell_worker, suite, c, out, root, grids[c.method], extra): c for c in todo}
            pending = set(futures)
            while pending:
                finished, pending = wait(pending, return_when=FIRST_EXCEPTION)
                for future in finished:
                    cell = futures[future]
                    if future.exception() is not None:
                        for other in pending:
                            other.cancel()
                        raise future.exception()  # type: ignore[misc]
                    done[cell] = future.result()
                    overall.advance(trainings[cell])
                    progress.note(f"{cell.task}/{cell.method}/seed{cell.seed}: test top-1 {done[cell]['top1']:.2f}%")
    overall.close()
    rows = [done[c] for c in cells]
    header = (f"{len(tasks)} tasks x {len(methods)} methods x {len(seeds)} seeds, grid: {grid}{' (quick)' if quick else ''}; "
              f"{cpu_name()}, {date.today().isoformat()}, commit {(git_commit() or 'unknown')[:10]}; "
              f"this call trained for {time.perf_counter() - start:.0f} s.")
    write_csv(rows, out / "results.csv")
    table = write_summary(rows, suite, methods, tasks, out / "summary.md", header)
    plot = None
    try:
        plot = plot_accuracy_gflops(table, "mean of group means", out)
    except SttoolError as err:  # matplotlib is optional
        progress.note(f"note: no plot written; {err}")
    return {"rows": rows, "summary": table, "out": str(out), "plot": str(plot) if plot else None}
