"""The reference a pre-trained backbone must beat on a small real-image task: a small CNN trained from
scratch on the same images, under the same protocol (train800val200, no augmentation, test once).

    python benchmarks/cnn_reference.py data/transfer                 # every task folder under the root
    python benchmarks/cnn_reference.py data/micro-vtab --tasks count,objects --seeds 0,1,2

Four conv stages (32, 64, 128, 256 channels; BatchNorm, ReLU, 2x2 max-pool), global average pooling
and a linear head: 0.39 M parameters at 64 px. AdamW, lr 3e-3, weight decay 0.05, cosine over 30
epochs, batch 64. Prints one JSON line per task and seed (test top-1) and the mean ± sd over seeds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from torch import nn

from sttool.config.schema import bind
from sttool.data import DataConfig, InputSpec, build_dataset, build_loader


def small_cnn(num_classes: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    channels = 3
    for width in (32, 64, 128, 256):
        layers += [nn.Conv2d(channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
                   nn.MaxPool2d(2)]
        channels = width
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, num_classes))


def train_and_test(root: Path, task: str, seed: int, epochs: int, size: int) -> dict:
    torch.manual_seed(seed)
    config = bind(DataConfig, {"dataset": "vtab", "root": str(root), "task": task, "train_split": "train800val200",
                               "augment": "none", "hflip": False, "num_workers": 0}, "cnn_reference")
    spec = InputSpec(img_size=size, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), crop_pct=1.0)
    train = build_dataset(config, "train", spec, train=True)
    test = build_dataset(config, "test", spec, train=False)
    model = small_cnn(train.num_classes)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.05)
    loader = build_loader(train, 64, shuffle=True, num_workers=0, seed=seed, drop_last=True)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs * len(loader))
    start = time.perf_counter()
    model.train()
    for _ in range(epochs):
        for batch in loader:
            loss = nn.functional.cross_entropy(model(batch[0]), batch[1])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for batch in build_loader(test, 256, shuffle=False, num_workers=0, seed=0):
            correct += int((model(batch[0]).argmax(1) == batch[1]).sum())
            total += len(batch[1])
    return {"task": task, "seed": seed, "top1": 100 * correct / total, "params": sum(p.numel() for p in model.parameters()),
            "train_seconds": round(time.perf_counter() - start, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="a folder of VTAB-1K-layout task folders")
    parser.add_argument("--tasks", help="comma-separated task folders (default: all under the root)")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--img-size", type=int, default=64)
    args = parser.parse_args()
    tasks = args.tasks.split(",") if args.tasks else sorted(p.name for p in args.root.iterdir() if (p / "test.txt").is_file())
    for task in tasks:
        results = [train_and_test(args.root, task, int(seed), args.epochs, args.img_size) for seed in args.seeds.split(",")]
        for result in results:
            print(json.dumps(result), flush=True)
        top1 = [r["top1"] for r in results]
        spread = f" ± {statistics.stdev(top1):.1f}" if len(top1) > 1 else ""
        print(f"{task}: small CNN from scratch {statistics.mean(top1):.1f}{spread} (seeds {args.seeds})", flush=True)


if __name__ == "__main__":
    main()
