"""The prepared GPU benchmark, one call, at most 8 minutes on one GPU (``benchmarks/gpu.sh`` runs it).

    python benchmarks/gpu.py --out gpu-results                 # on a GPU: the sizes below
    python benchmarks/gpu.py --out gpu-results --size tiny     # anywhere (CI runs it on the CPU)

It measures, in one process and side by side:
  1. inference: the dense ViT-B/16 against Sparse-Tuning (keep 0.7), bf16 autocast, batch 256;
  2. a training step of Sparse-Tuning, AdaptFormer and full fine-tuning at one batch: time and peak
     memory (``torch.cuda.max_memory_allocated``);
  3. the same inference compiled (``torch.compile``) against eager;
  4. a few hundred steps of real training on images rendered on the GPU (the streamed synthetic task),
     under torchrun with one process, so the CUDA path is proven end to end: bf16 autocast, fused SDPA,
     DistributedDataParallel with NCCL.
It writes ``results.json`` and ``results.md`` (one table) into ``--out``; every step has its own time
budget and a failure in one is recorded and does not stop the others.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import torch

SIZES = {
    # backbone, image size, inference batch, training batch, rounds, real-training steps
    "full": dict(backbone="vit_base_patch16_224", img_size=224, infer_batch=256, train_batch=64, rounds=20, warmup=5, steps=300,
                 compile_backend="inductor"),
    # the CPU check of CI: every code path, tiny sizes, and a compile backend that needs no C++ compiler
    "tiny": dict(backbone="vit_micro_patch8_64", img_size=64, infer_batch=8, train_batch=4, rounds=2, warmup=1, steps=4,
                 compile_backend="aot_eager"),
}


def inference(size: dict[str, Any], device: torch.device, dtype: str, compiled: bool) -> dict[str, Any]:
    from sttool.models import build_model
    from sttool.profiling.flops import count_flops
    from sttool.profiling.timing import compare_throughput

    models = {"dense": build_model(size["backbone"], method="full", keep_rate=1.0, num_classes=100, img_size=size["img_size"]),
              "sparse_tuning": build_model(size["backbone"], method="sparse_tuning", keep_rate=0.7, num_classes=100,
                                           img_size=size["img_size"])}
    flops = {name: count_flops(model).gflops for name, model in models.items()}
    if compiled:
        models = {name: torch.compile(model.to(device).eval(), backend=size["compile_backend"]) for name, model in models.items()}
    timed = compare_throughput(models, (3, size["img_size"], size["img_size"]), size["infer_batch"], device, dtype,
                               rounds=size["rounds"], warmup=size["warmup"], baseline="dense")
    return {"dtype": timed["dense"]["dtype"], "batch": size["infer_batch"], "compiled": compiled,
            "images_per_s": {k: v["images_per_s"] for k, v in timed.items()},
            "speedup": timed["sparse_tuning"]["speedup"], "flops_ratio": flops["dense"] / flops["sparse_tuning"],
            "target": ">= 1.45x the dense throughput"}


def training_step(size: dict[str, Any], device: torch.device, dtype: str) -> dict[str, Any]:
    from sttool.models import build_model
    from sttool.profiling.timing import compare_training_steps

    models = {method: build_model(size["backbone"], method=method, num_classes=100, img_size=size["img_size"])
              for method in ("sparse_tuning", "adaptformer", "full")}
    report = compare_training_steps(models, (3, size["img_size"], size["img_size"]), size["train_batch"], 100, device, dtype,
                                    rounds=size["rounds"], warmup=size["warmup"], baseline="adaptformer")
    return {**report, "targets": "Sparse-Tuning <= 0.70x the peak memory and <= 0.65x the step time of AdaptFormer"}


def real_training(size: dict[str, Any], out: Path, device: str) -> dict[str, Any]:
    """torchrun with one process: the quickstart's model on freshly rendered images, ``steps`` steps."""
    steps = size["steps"]
    batch = 256 if device == "cuda" else 8
    recipe = Path(__file__).resolve().parent.parent / "recipes" / "quickstart.yaml"
    data = out / "synthetic"  # val and test files; the training images are rendered on the device
    prepare = [sys.executable, "-m", "sttool", "prepare", "synthetic", "--out", str(data), "--no-videos",
               "--images-per-class", "0,20,20"]
    if not (data / "images" / "info.json").is_file():
        subprocess.run(prepare, check=True, capture_output=True, timeout=120)
    overrides = [f"output_dir={out / 'training'}", f"data.root={data}", "data.stream=" + str(steps * batch), "data.task=shapes",
                 f"train.batch_size={batch}", "train.epochs=1", f"train.device={device}",
                 "train.precision=" + ("bf16" if device == "cuda" else "fp32"), "model.weights=hub",
                 "data.num_workers=0"]
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "1", "--standalone",
               "-m", "sttool", "finetune", str(recipe), "--overwrite", *overrides]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"torchrun exited {done.returncode}: {done.stderr.strip().splitlines()[-1:]}")
    results = json.loads((out / "training" / "results.json").read_text())
    return {"steps": steps, "batch": batch, "seconds": seconds, "images_per_s": steps * batch / seconds,
            "test_top1": results["test"]["top1"], "command": " ".join(command[2:])}


def markdown(results: dict[str, Any]) -> str:
    rows = ["| measurement | figure | target |", "| --- | --- | --- |"]
    for key in ("inference", "inference_compiled"):
        r = results.get(key)
        if isinstance(r, dict) and "speedup" in r:
            rows.append(f"| inference {r['dtype']} batch {r['batch']}{' compiled' if r['compiled'] else ''}: ST / dense "
                        f"| {r['speedup']:.2f}x ({r['images_per_s']['sparse_tuning']:.0f} vs {r['images_per_s']['dense']:.0f} img/s; "
                        f"FLOPs ratio {r['flops_ratio']:.2f}x) | {r['target']} |")
    step = results.get("training_step")
    if isinstance(step, dict) and "models" in step:
        st = step["models"]["sparse_tuning"]
        memory = "n/a (CPU)" if st["memory_ratio"] is None else f"{st['memory_ratio']:.2f}x"
        rows.append(f"| training step batch {step['batch_size']}: ST / AdaptFormer | time {st['time_ratio']:.2f}x, "
                    f"peak memory {memory} | <= 0.65x time, <= 0.70x memory |")
    real = results.get("real_training")
    if isinstance(real, dict) and "steps" in real:
        rows.append(f"| real training (torchrun, 1 process): {real['steps']} steps of {real['batch']} | "
                    f"{real['seconds']:.0f} s, {real['images_per_s']:.0f} img/s, test top-1 {real['test_top1']:.1f}% | runs |")
    for key, value in results.items():
        if isinstance(value, dict) and "error" in value:
            rows.append(f"| {key} | failed: {value['error']} | |")
    head = f"{results['date']}, {results['device']}, torch {results['torch']}"
    return f"{head}\n\n" + "\n".join(rows) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("gpu-results"))
    parser.add_argument("--size", choices=sorted(SIZES), default="full")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    size = SIZES[args.size]
    device = torch.device(args.device)
    args.out.mkdir(parents=True, exist_ok=True)
    from sttool.runtime import describe_device

    results: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M"), "device": describe_device(device),
                               "torch": torch.__version__, "size": args.size}
    steps = {
        "inference": lambda: inference(size, device, "bf16", compiled=False),
        "training_step": lambda: training_step(size, device, "bf16"),
        "inference_compiled": lambda: inference(size, device, "bf16", compiled=True),
        "real_training": lambda: real_training(size, args.out, args.device),
    }
    for name, step in steps.items():
        start = time.perf_counter()
        try:
            results[name] = step()
        except Exception as err:  # record and go on: one failed measurement must not cost the others
            results[name] = {"error": f"{type(err).__name__}: {str(err)[:300]}", "trace": traceback.format_exc()[-2000:]}
        results[name]["seconds"] = results[name].get("seconds", time.perf_counter() - start)
        (args.out / "results.json").write_text(json.dumps(results, indent=2))
        print(f"{name}: {time.perf_counter() - start:.0f} s", flush=True)
    (args.out / "results.md").write_text(markdown(results))
    print((args.out / "results.md").read_text())
    failed = [k for k, v in results.items() if isinstance(v, dict) and "error" in v]
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
