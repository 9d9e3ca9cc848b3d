"""``sttool prepare synthetic``: the options of a synthetic set and the one call that writes it."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from sttool.data.synthetic.images import SPLITS, SetReport, write_image_set
from sttool.data.synthetic.tasks import IMAGE_TASKS
from sttool.data.synthetic.videos import DIRECTIONS, write_video_set
from sttool.errors import SttoolError
from sttool.progress import SILENT, Progress


def default_out(task: str) -> str:
    """The pretrain set lives apart from the quickstart set, so both can exist at once."""
    return {"shapes": "data/synthetic", "micro-vtab": "data/micro-vtab"}.get(task, f"data/synthetic-{task}")


@dataclass
class SyntheticOptions:
    """Sizes of a synthetic set. Counts are per class and per split (train, val, test)."""

    out: str = "data/synthetic"
    task: str = "shapes"  # a row of IMAGE_TASKS
    seed: int = 0
    image_size: int = 64
    images_per_class: tuple[int, int, int] = (100, 50, 50)
    videos: bool = True
    video_size: int = 64
    num_frames: int = 16
    videos_per_class: tuple[int, int, int] = (120, 25, 25)

    def check(self) -> None:
        if self.task not in IMAGE_TASKS:
            raise SttoolError(f"synthetic task '{self.task}' is not one of {', '.join(IMAGE_TASKS)}")
        for name, least in (("image_size", 16), ("video_size", 16), ("num_frames", 1)):
            if getattr(self, name) < least:
                raise SttoolError(f"synthetic {name} {getattr(self, name)} is too small (at least {least})")
        for name in ("images_per_class", "videos_per_class"):
            counts = getattr(self, name)
            if len(counts) != len(SPLITS) or min(counts) < 0 or sum(counts) < 1:
                raise SttoolError(f"synthetic {name} {tuple(counts)}: give train,val,test counts, 0 or more, not all 0")


def _clear(folders: list[Path], marker: Path) -> None:
    """Remove a previous set (recognised by its info.json) so no stale file survives; refuse anything else."""
    if not any(folder.exists() for folder in folders):
        return
    if not marker.is_file():
        raise SttoolError(f"{folders[0]} exists and was not written by 'sttool prepare synthetic'; choose another --out")
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)


def make_synthetic(options: SyntheticOptions, progress: Progress = SILENT) -> list[SetReport]:
    """Write the image set of ``options.task`` (and the motion video set if ``options.videos``)."""
    options.check()
    out = Path(options.out)
    images, masks = out / "images", out / "masks"
    _clear([images, masks], images / "info.json")
    total = sum(options.images_per_class) * len(IMAGE_TASKS[options.task].names)
    reports = [write_image_set(out, options.task, options.seed, options.image_size, options.images_per_class, progress.task("images", total).advance)]
    if options.videos:
        _clear([out / "videos"], out / "videos" / "info.json")
        total = sum(options.videos_per_class) * len(DIRECTIONS)
        advance = progress.task("videos", total).advance
        reports.append(write_video_set(out, options.seed, options.video_size, options.num_frames, options.videos_per_class, advance))
    return reports
