"""The model card of an adapter folder (its README.md): what the Hugging Face Hub shows for a shared run."""

from __future__ import annotations

from typing import Any

from sttool.runs.recipe import Recipe


def model_card(recipe: Recipe, results: dict[str, Any], class_names: list[str], dense_gflops: float) -> str:
    """The adapter folder's README.md: Hub metadata, what the model is, its figures, how to use and upload it."""
    import sys

    import sttool

    model = recipe.model
    video = model.num_frames is not None
    test = results.get("test") or {}
    best = results.get("best") or {}
    base = model.backbone.split(".")[0] if model.weights == "hub" else None
    front = ["---", "library_name: sttool", "tags:", "  - sttool", "  - sparse-tuning", "  - timm",
             f"  - {'video' if video else 'image'}-classification"]
    if base:
        front.append(f"base_model: timm/{model.backbone}")
    front += [f"datasets:\n  - {recipe.data.dataset}", "metrics:\n  - accuracy", "---"]
    names = ", ".join(class_names[:20]) + (f", ... ({len(class_names)} in all)" if len(class_names) > 20 else "")
    rows = [
        ("test top-1", f"{test['top1']:.2f}% ({test.get('num_samples', '?')} samples, {results['checkpoint']})" if test else "not measured"),
        ("best val top-1", f"{best['top1']:.2f}% (epoch {best['epoch']})" if best else "no val split"),
        ("GFLOPs", f"{results['gflops']:.4g} ({100 * results['gflops'] / dense_gflops:.0f}% of the dense backbone's {dense_gflops:.4g})"),
        ("trainable parameters", f"{results['params']['trainable'] / 1e6:.3f} M of {results['params']['total'] / 1e6:.2f} M"),
        ("classes", names or "?"),
        ("data", f"{recipe.data.dataset} ({recipe.data.root}{', task ' + recipe.data.task if recipe.data.task else ''})"),
    ]
    table = "\n".join(["| | |", "| --- | --- |", *(f"| {k} | {v} |" for k, v in rows)])
    command = " ".join(["sttool", *sys.argv[1:]]) if sys.argv and "sttool" in sys.argv[0] else "sttool finetune RECIPE"
    return f"""{chr(10).join(front)}

# {recipe.name}

A `{model.method}` model tuned with [sttool](https://pypi.org/project/sttool/) {sttool.__version__} on top of the timm
backbone `{model.backbone}` (weights: `{model.weights}`), keep rate {model.resolved().keep_rate} at blocks
{', '.join(map(str, model.keep_layers))}. This folder holds only the trained tensors (`adapter.safetensors`); the frozen
backbone comes from timm when the folder is loaded.

{table}

## Use

```bash
sttool predict path/to/this/folder image.png        # top-5 classes
sttool evaluate path/to/this/folder                  # on the recipe's test split, if you have its data
```

```python
import sttool
predictor = sttool.load("path/to/this/folder")       # or a Hub id: "user/name"
report = predictor.predict(["image.png"])
```

## How it was trained

`{command}`; the full recipe is in `config.json` (`recipe`). Upload this folder to the Hugging Face Hub with
`huggingface-cli upload USER/NAME path/to/this/folder`.
"""
