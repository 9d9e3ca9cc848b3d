"""Input-pipeline throughput on the synthetic sets: images/s and clips/s with 0, 1 and 2 DataLoader workers.

    python benchmarks/loader.py                      # generates a default synthetic set in a temp folder
    python benchmarks/loader.py --root data/synthetic --img-size 224 --frames 8 --batch-size 32

Measures the training pipeline as the engine runs it (decode, paper augmentation to the model's
input size, normalise, collate): images from PNG, clips from FFV1 videos with segment sampling,
decoded in the bounded decode worker (``decode_timeout`` 10 s) and in-process (``decode_timeout`` 0)
to show what the deadline costs. The first batches (worker start-up) are not timed. With 0 workers
the main process loads; "per worker" divides by max(1, workers). Settings are measured in
alternating rounds and the median round is reported, since a shared machine's speed drifts.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import torch

from sttool.config.schema import bind
from sttool.data import Batch, DataConfig, InputSpec, build_dataset, build_loader
from sttool.data.synthetic import SyntheticOptions, make_synthetic


def measure(config: DataConfig, spec: InputSpec, workers: int, batch_size: int, batches: int, warmup: int) -> float:
    """Samples per second over ``batches`` batches after ``warmup`` untimed ones."""
    dataset = build_dataset(config, "train", spec, train=True)
    loader = build_loader(dataset, batch_size, shuffle=True, num_workers=workers, seed=0, drop_last=True)

    def endless() -> Iterator[Batch]:
        while True:
            yield from loader

    stream = endless()
    for _ in range(warmup):
        next(stream)
    start, seen = time.perf_counter(), 0
    for _ in range(batches):
        seen += len(next(stream).labels)
    return seen / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default=None, help="a synthetic set (default: generate one in a temp folder)")
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--batches", type=int, default=8, help="timed batches per setting")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--workers", default="0,1,2")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--video-backends", default="", help="also time these backends alone, e.g. pyav,decord,torchcodec")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    torch.set_num_threads(1)  # the loader's own work; one thread as in a DataLoader worker
    with tempfile.TemporaryDirectory() as temp:
        root = args.root or str(Path(temp) / "synthetic")
        if args.root is None:
            make_synthetic(SyntheticOptions(out=root))
        timm_like = dict(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), interpolation="bicubic", crop_pct=0.9)
        settings = {
            "images/s (PNG, paper aug.)": (DataConfig(root=root), InputSpec(args.img_size, **timm_like)),
            f"clips/s ({args.frames} frames, bounded decode)": (
                DataConfig(dataset="synthetic_videos", root=root),
                InputSpec(args.img_size, **timm_like, num_frames=args.frames),
            ),
            f"clips/s ({args.frames} frames, in-process decode)": (
                bind(DataConfig, {"dataset": "synthetic_videos", "root": root, "decode_timeout": 0}, "benchmark"),
                InputSpec(args.img_size, **timm_like, num_frames=args.frames),
            ),
        }
        for backend in [b for b in args.video_backends.split(",") if b]:  # each backend alone, in-process
            settings[f"clips/s ({args.frames} frames, {backend}, in-process)"] = (
                bind(DataConfig, {"dataset": "synthetic_videos", "root": root, "decode_timeout": 0, "video_backend": backend},
                     "benchmark"),
                InputSpec(args.img_size, **timm_like, num_frames=args.frames),
            )
        runs = [(name, config, spec, int(w)) for name, (config, spec) in settings.items() for w in args.workers.split(",")]
        rates: dict[tuple[str, int], list[float]] = {(name, w): [] for name, _, _, w in runs}
        for _ in range(args.rounds):
            for name, config, spec, workers in runs:
                rates[name, workers].append(measure(config, spec, workers, args.batch_size, args.batches, args.warmup))
    results = [
        {"what": name, "workers": w, "per_s": statistics.median(r), "per_worker_s": statistics.median(r) / max(1, w), "range": [min(r), max(r)]}
        for (name, w), r in rates.items()
    ]
    if args.json:
        print(json.dumps({"img_size": args.img_size, "batch_size": args.batch_size, "results": results}, indent=2))
        return
    print(f"| what (img_size {args.img_size}, batch {args.batch_size}) | workers | per s (median) | per s per worker | range over rounds |")
    print("| --- | --- | --- | --- | --- |")
    for row in results:
        low, high = row["range"]
        print(f"| {row['what']} | {row['workers']} | {row['per_s']:.0f} | {row['per_worker_s']:.0f} | {low:.0f}-{high:.0f} |")


if __name__ == "__main__":
    main()
