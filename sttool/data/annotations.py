"""Official annotations of Something-Something v2 (JSON) and Kinetics-400 (CSV), turned into ListEntries.

SSv2: ``something-something-v2-labels.json`` maps template text to a class id string; the split JSONs
list ``{"id", "template", ...}``; the class is ``labels[template.replace('[', '').replace(']', '')]``;
videos are ``<id>.webm``. K400: CSV with header ``label,youtube_id,time_start,time_end,split[,is_cc]``;
class index from the sorted train labels; clips ``<split>/<label>/<youtube_id>_<start:06d>_<end:06d>.mp4``
(found by name anywhere under the video folder, so other layouts work too).
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from pathlib import Path

from sttool.config.schema import closest
from sttool.data.samples import ListEntry
from sttool.errors import SttoolError

VIDEO_SUFFIXES = (".mp4", ".webm", ".mkv", ".avi", ".mov", ".m4v")
ANNOTATION_FOLDERS = ("", "annotations", "labels")


def find_annotation(root: Path, names: list[str], what: str) -> Path:
    """The first of ``names`` found in ROOT, ROOT/annotations or ROOT/labels."""
    tried = [root / folder / name for name in names for folder in ANNOTATION_FOLDERS]
    for path in tried:
        if path.is_file():
            return path
    raise SttoolError(f"{what} not found under {root}; looked for {', '.join(names)} in {root} and its annotations/, labels/")


def _load_json(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise SttoolError(f"{path}: not readable JSON ({err})") from None


def ssv2_labels(path: Path) -> dict[str, int]:
    """Template text -> class index, from the labels JSON."""
    data = _load_json(path)
    if not isinstance(data, dict) or not data:
        raise SttoolError(f"{path}: expected an object mapping template text to class ids")
    try:
        labels = {str(template): int(index) for template, index in data.items()}
    except (TypeError, ValueError):
        raise SttoolError(f"{path}: class ids must be integers (as strings), e.g. \"Approaching something with your camera\": \"0\"") from None
    if sorted(labels.values()) != list(range(len(labels))):
        raise SttoolError(f"{path}: class ids must be 0..{len(labels) - 1}, each once")
    return labels


def ssv2_records(path: Path, labels: dict[str, int], labels_path: Path) -> list[tuple[str, int, str]]:
    """(video id, label, where) per entry of a split JSON; ``where`` = 'file entry n (id ...)'."""
    data = _load_json(path)
    if not isinstance(data, list) or not data:
        raise SttoolError(f"{path}: expected a non-empty list of {{\"id\": ..., \"template\": ...}} entries")
    records = []
    for number, item in enumerate(data, start=1):
        if not isinstance(item, dict) or "id" not in item:
            raise SttoolError(f"{path} entry {number}: has no 'id'")
        where = f"{path} entry {number} (id {item['id']})"
        if "template" not in item:
            raise SttoolError(f"{where}: has no 'template' (the SSv2 test split is unlabelled)")
        template = str(item["template"]).replace("[", "").replace("]", "")
        if template not in labels:
            raise SttoolError(f"{where}: template {template!r} is not in {labels_path}; {closest(template, tuple(labels))}")
        records.append((str(item["id"]), labels[template], where))
    return records


def locate_ssv2_videos(root: Path, video_dir: str | None, ids: list[str]) -> tuple[Path, str]:
    """The folder and suffix of the ``<id>.webm`` (or converted ``.mp4``) files, tried on the first ids."""
    folders = [root / video_dir] if video_dir else [root / "20bn-something-something-v2", root / "videos", root]
    for folder in folders:
        for suffix in (".webm", ".mp4"):
            if any((folder / f"{vid}{suffix}").is_file() for vid in ids[:50]):
                return folder, suffix
    raise SttoolError(f"no SSv2 video found for ids {', '.join(ids[:3])}... in {', '.join(map(str, folders))} (.webm or .mp4); set data.video_dir")


def ssv2_split_entries(split_path: Path, labels_path: Path, video_root: Path, video_dir: str | None) -> tuple[list[ListEntry], list[str]]:
    """Entries of one SSv2 split JSON and the class names in label order."""
    labels = ssv2_labels(labels_path)
    records = ssv2_records(split_path, labels, labels_path)
    folder, suffix = locate_ssv2_videos(video_root, video_dir, [vid for vid, _, _ in records])
    entries = [ListEntry(str(folder / f"{vid}{suffix}"), label, where) for vid, label, where in records]
    return entries, sorted(labels, key=labels.__getitem__)


def ssv2_entries(root: Path, split: str, video_dir: str | None) -> tuple[list[ListEntry], list[str]]:
    """Entries of SSv2 split ``split`` (train, validation) found under ``root``, and the class names."""
    labels_path = find_annotation(root, ["something-something-v2-labels.json", "labels.json"], "SSv2 labels JSON")
    split_path = find_annotation(root, [f"something-something-v2-{split}.json", f"{split}.json"], f"SSv2 '{split}' JSON")
    return ssv2_split_entries(split_path, labels_path, root, video_dir)


@dataclass(frozen=True)
class K400Row:
    label: str | None  # None in the unlabelled test CSV
    youtube_id: str
    start: int
    end: int
    line: int

    @property
    def clip_name(self) -> str:
        return f"{self.youtube_id}_{self.start:06d}_{self.end:06d}"


def k400_rows(path: Path) -> list[K400Row]:
    """Rows of a Kinetics CSV; the line numbers count the header as line 1."""
    with open(path, encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = {"youtube_id", "time_start", "time_end"} - set(reader.fieldnames or ())
        if missing:
            raise SttoolError(f"{path}: missing column(s) {', '.join(sorted(missing))}; expected label,youtube_id,time_start,time_end,split")
        rows = []
        for row in reader:
            try:
                start, end = int(float(row["time_start"])), int(float(row["time_end"]))
            except (TypeError, ValueError):
                raise SttoolError(f"{path} line {reader.line_num}: time_start/time_end must be numbers, got {row['time_start']!r}, {row['time_end']!r}") from None
            rows.append(K400Row(row.get("label"), row["youtube_id"], start, end, reader.line_num))
    if not rows:
        raise SttoolError(f"{path}: no rows below the header")
    return rows


def k400_csv(root: Path, split: str) -> Path:
    names = [f"{split}.csv", f"kinetics_400_{split}.csv", f"kinetics-400_{split}.csv", f"kinetics400_{split}.csv"]
    if split == "val":
        names.append("validate.csv")  # DeepMind's name for the validation CSV
    return find_annotation(root, names, f"Kinetics-400 '{split}' CSV")


def k400_classes(train_rows: list[K400Row], path: Path) -> list[str]:
    """Sorted train labels: the class index stays stable when some videos are missing."""
    labels = sorted({row.label for row in train_rows if row.label})
    if not labels:
        raise SttoolError(f"{path}: no labels in the train CSV")
    return labels


def video_index(folder: Path) -> dict[str, str]:
    """File stem -> path of every video under ``folder`` (and youtube id -> path, for other namings)."""
    index: dict[str, str] = {}
    for directory, _, names in os.walk(folder):
        for name in names:
            stem, suffix = os.path.splitext(name)
            if suffix.lower() in VIDEO_SUFFIXES:
                index.setdefault(stem, os.path.join(directory, name))
                index.setdefault(stem[:11], os.path.join(directory, name))  # YouTube ids have 11 characters
    return index


def k400_split_entries(path: Path, classes: list[str], videos: dict[str, str], folder: Path, split: str) -> list[ListEntry]:
    """Entries of one K400 CSV; a clip not on disk keeps its expected path (it becomes a bad sample,
    named with its CSV line, when read)."""
    index_of = {name: i for i, name in enumerate(classes)}
    entries = []
    for row in k400_rows(path):
        if not row.label:
            raise SttoolError(f"{path} line {row.line}: no label (the Kinetics test CSV is unlabelled)")
        if row.label not in index_of:
            raise SttoolError(f"{path} line {row.line}: label {row.label!r} is not a train label; {closest(str(row.label), tuple(classes))}")
        found = videos.get(row.clip_name) or videos.get(row.youtube_id)
        expected = folder / split / str(row.label) / f"{row.clip_name}.mp4"
        entries.append(ListEntry(found or str(expected), index_of[row.label], str(path), row.line))
    return entries


def k400_entries(root: Path, split: str, video_dir: str | None) -> tuple[list[ListEntry], list[str]]:
    """Entries of K400 split ``split`` found under ``root``, and the classes (sorted train labels)."""
    train_path = k400_csv(root, "train")
    classes = k400_classes(k400_rows(train_path), train_path)
    folder = root / video_dir if video_dir else root
    return k400_split_entries(k400_csv(root, split), classes, video_index(folder), folder, split), classes
