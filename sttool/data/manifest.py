"""The manifest ``sttool prepare videos`` writes: every good video with what was measured by decoding it.

CSV with header ``split,path,label,num_frames,fps,width,height``; ``num_frames`` is the count that
really decodes, so sampling is clamped to it even where the container claims more (decord hangs there).
Paths are relative to the manifest's folder, like the list files beside it.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sttool.errors import SttoolError

MANIFEST = "manifest.csv"
MANIFEST_FIELDS = ("split", "path", "label", "num_frames", "fps", "width", "height")


def write_manifest(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=MANIFEST_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def read_frame_counts(path: Path) -> dict[str, int]:
    """Resolved video path -> decodable frame count; empty when there is no manifest."""
    if not path.is_file():
        return {}
    counts = {}
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        if not {"path", "num_frames"} <= set(reader.fieldnames or ()):
            raise SttoolError(f"{path}: a manifest needs the columns {', '.join(MANIFEST_FIELDS)}")
        for row in reader:
            try:
                counts[os.path.join(path.parent, row["path"])] = int(row["num_frames"])
            except (TypeError, ValueError):
                raise SttoolError(f"{path} line {reader.line_num}: num_frames {row['num_frames']!r} is not an integer") from None
    return counts
