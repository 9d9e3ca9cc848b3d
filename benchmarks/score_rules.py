"""Kept-token foreground precision of the token-score rules on the synthetic shapes' masks.

    python benchmarks/score_rules.py                                  # the frozen micro backbone
    python benchmarks/score_rules.py --run runs/quickstart --keep-rate 0.65

For every test image with a mask, each rule ("cls": the [CLS] token's attention, the rule of EViT and
Sparse-Tuning; "mean": the attention each token receives, averaged over all queries, sttool's rule for
average-pooled ViTs without a class token) picks the kept patches of the same model at every pruning
block; the figure is the share of kept patches that lie on the object (a patch counts when half its
pixels are foreground), beside the object's share of all patches (what random picks would give).
"""

from __future__ import annotations

import argparse
import json

import torch

from sttool.config.schema import bind
from sttool.data import DataConfig, build_dataset, build_loader
from sttool.models import build_model
from sttool.runs.load import input_spec, load_run
from sttool.visualize.kept_tokens import object_shares, track_kept_tokens


def measure(model, root: str, limit: int) -> dict[str, object]:
    """Per rule, per pruning stage, the mean share of kept patches on the object."""
    dataset = build_dataset(bind(DataConfig, {"root": root, "masks": True}, "data"), "test", input_spec(model), train=False)
    loader = build_loader(dataset, 50, shuffle=False, num_workers=0, seed=0)
    grid = tuple(model.patch_embed.grid_size)
    figures: dict[str, object] = {}
    for rule in ("cls", "mean"):
        for block in model.sparse_blocks():
            block.score = rule
        per_stage: list[list[float]] = []
        object_patches: list[float] = []
        seen = 0
        for batch in loader:
            with torch.no_grad():
                stages = track_kept_tokens(model, batch.inputs)
            for i, mask in enumerate(batch.masks.numpy()):
                shares = object_shares(mask, grid, [s.kept[i].view(*grid).numpy() for s in stages])
                object_patches.append(shares["object_patches"])
                per_stage.append(shares["kept_on_object"])
            seen += len(batch.labels)
            if seen >= limit:
                break
        means = [sum(s[k] for s in per_stage if s[k] is not None) / sum(s[k] is not None for s in per_stage)
                 for k in range(len(per_stage[0]))]
        figures[rule] = {"kept_on_object": means, "images": len(per_stage)}
        figures["object_patches"] = sum(object_patches) / len(object_patches)  # the same images for both rules
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="data/synthetic")
    parser.add_argument("--run", help="a tuned run folder; default: the frozen micro backbone")
    parser.add_argument("--keep-rate", type=float, default=0.7)
    parser.add_argument("--images", type=int, default=500)
    args = parser.parse_args()
    if args.run:
        model, _, _ = load_run(args.run, torch.device("cpu"))
        model.set_keep_rate(args.keep_rate)
    else:
        model = build_model("vit_micro_convstem_patch8_64.synthetic_pretrain", weights="hub", keep_rate=args.keep_rate,
                            num_classes=10)
    figures = measure(model.eval(), args.root, args.images)
    print(json.dumps({"source": args.run or "micro backbone (frozen)", "keep_rate": args.keep_rate,
                      "blocks": list(model.sttool_config.keep_layers), **figures}, indent=1))


if __name__ == "__main__":
    main()
