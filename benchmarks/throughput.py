"""Inference throughput of the dense timm ViT-B/16 against Sparse-Tuning, side by side in one run.

    python benchmarks/throughput.py                          # CPU, fp32, batch 16, 2 threads
    python benchmarks/throughput.py --device cuda --dtype bf16 --batch-size 256

Both models get the same random batch and are timed in alternating rounds (dense, sparse, dense, ...)
so that they see the same machine state; the speed-up is the median of the per-round ratios, which
is robust on a shared machine where one round can be much slower than the next.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import timm
import torch

from sttool.models import build_model
from sttool.profiling.flops import count_flops
from sttool.runtime import PRECISIONS, autocast, describe_device, resolve_precision, sync


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="fp32", choices=PRECISIONS)
    parser.add_argument("--compile", action="store_true", help="time torch.compile'd models, both of them")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (torch.set_num_threads)")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--keep-rate", type=float, default=0.7)
    parser.add_argument("--method", default="sparse_tuning")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    models = {
        "dense": timm.create_model("vit_base_patch16_224", num_classes=100),
        args.method: build_model(method=args.method, keep_rate=args.keep_rate, num_classes=100),
    }
    gflops = {name: count_flops(model).gflops for name, model in models.items()}
    models = {name: model.to(device).eval() for name, model in models.items()}
    if args.compile:
        models = {name: torch.compile(model) for name, model in models.items()}
    inputs = torch.randn(args.batch_size, 3, 224, 224, device=device)
    precision = resolve_precision(args.dtype, device)
    seconds: dict[str, list[float]] = {name: [] for name in models}
    with torch.inference_mode(), autocast(device, precision):
        for round_index in range(args.warmup + args.rounds):
            for name, model in models.items():
                sync(device)
                start = time.perf_counter()
                model(inputs)
                sync(device)
                if round_index >= args.warmup:
                    seconds[name].append(time.perf_counter() - start)
    dense, sparse = seconds["dense"], seconds[args.method]
    result = {
        "device": describe_device(device),
        "dtype": precision.name,
        "compiled": args.compile,
        "batch_size": args.batch_size,
        "rounds": args.rounds,
        "gflops": gflops,
        "images_per_s": {name: args.batch_size / statistics.median(s) for name, s in seconds.items()},
        "speedup_median_of_rounds": statistics.median(d / s for d, s in zip(dense, sparse, strict=True)),
        "speedup_of_medians": statistics.median(dense) / statistics.median(sparse),
        "flops_ratio": gflops["dense"] / gflops[args.method],
        "date": time.strftime("%Y-%m-%d"),
        "torch": torch.__version__,
        "timm": timm.__version__,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{result['date']}  {result['device']}  {precision.name}{' compiled' if args.compile else ''}  batch {args.batch_size}  {args.rounds} rounds")
    for name in models:
        print(f"  {name:>16}: {result['images_per_s'][name]:8.2f} images/s  {gflops[name]:6.2f} GFLOPs")
    print(f"  speed-up {result['speedup_median_of_rounds']:.3f}x (median of per-round ratios), "
          f"{result['speedup_of_medians']:.3f}x (ratio of medians); FLOPs ratio {result['flops_ratio']:.3f}x")


if __name__ == "__main__":
    main()
