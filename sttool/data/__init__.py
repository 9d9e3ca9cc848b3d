"""Data for sttool: images and videos, datasets by name, synthetic sets, bad-sample handling, loaders.

The engine's API::

    config = bind(DataConfig, recipe["data"], "recipe.yaml: data")
    spec = InputSpec.from_timm(resolve_model_data_config(model), num_frames=None)
    if has_split(config, "val"):
        val = build_dataset(config, "val", spec, train=False)
    loader = build_loader(build_dataset(config, "train", spec, train=True), 64, True, config.num_workers, seed)
    for batch in loader: ...   # a Batch: inputs, labels, skipped (and masks)

Exports are imported lazily so that light users (the CLI's --help, the decode worker) do not load torch.
"""

from typing import Any

_LAZY = {
    "DataConfig": "sttool.data.config",
    "InputSpec": "sttool.data.config",
    "build_dataset": "sttool.data.build",
    "has_split": "sttool.data.datasets",
    "split_name": "sttool.data.datasets",
    "Batch": "sttool.data.loader",
    "collate": "sttool.data.loader",
    "build_loader": "sttool.data.loader",
    "SkippedSample": "sttool.data.samples",
    "ListEntry": "sttool.data.samples",
    "VTAB_CLASSES": "sttool.data.vtab",
    "SyntheticOptions": "sttool.data.synthetic",
    "make_synthetic": "sttool.data.synthetic",
    "mask_path": "sttool.data.synthetic",
    "load_mask": "sttool.data.synthetic",
    "VideoBackend": "sttool.data.video.backends",
    "VideoError": "sttool.data.video.backends",
    "make_backend": "sttool.data.video.backends",
    "sample_frames": "sttool.data.video.sampling",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sttool.data' has no attribute {name!r}")
