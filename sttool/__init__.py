"""sttool: adapt pre-trained Vision Transformers cheaply with Sparse-Tuning.

Quick use::

    import timm, sttool
    vit = timm.create_model("vit_base_patch16_224", num_classes=100)
    sttool.patch_model(vit, method="sparse_tuning", keep_rate=0.7)

    predictor = sttool.load("runs/quickstart")     # a tuned run, ready to predict
    report = predictor.predict([Path("photo.png")])

The model API is imported lazily so that ``sttool --help`` does not pay for importing torch.
"""

from typing import Any

__version__ = "0.2.0.dev0"

_LAZY = {
    "ModelConfig": "sttool.models.config",
    "build_model": "sttool.models.build",
    "patch_model": "sttool.models.build",
    "trainable_parameters": "sttool.models.build",
    "SttoolError": "sttool.errors",
    "load": "sttool.engine.inference",
    "Predictor": "sttool.engine.inference",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sttool' has no attribute {name!r}")
