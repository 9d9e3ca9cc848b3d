"""What a bug report needs, in one call (``sttool env``): versions, devices, the CPU's kernels and bf16,
the video backends that load, the optional extras, and where weights and data are cached.

Built on ``environment()`` (what every run records in ``env.json``); nothing is downloaded or written.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

from sttool.runs.folder import environment

EXTRAS = ("matplotlib", "onnx", "onnxruntime", "tensorboard", "wandb", "mlflow", "mlxtend", "skimage")


def _video_backends() -> dict[str, str]:
    """Each backend: its version when it loads, else the one-line reason it does not."""
    from sttool.data.video.backends import load_decord, load_torchcodec

    found: dict[str, str] = {}
    for name, load in (("torchcodec", load_torchcodec), ("decord", load_decord)):
        try:
            found[name] = f"loads ({getattr(load(), '__version__', None) or _version(name)})"
        except ImportError as err:
            found[name] = f"does not load: {err}"
    try:
        import av

        found["pyav"] = f"loads ({av.__version__})"
    except ImportError as err:
        found["pyav"] = f"does not load: {err}"
    return found


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "version unknown"


def _caches() -> dict[str, str]:
    """timm's weights come through the Hugging Face Hub cache (or torch hub for a few); the datasets'
    defaults are relative folders under data/."""
    hf_home = Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface"))
    hub = Path(os.environ.get("HF_HUB_CACHE", hf_home / "hub"))
    torch_home = Path(os.environ.get("TORCH_HOME", Path.home() / ".cache" / "torch"))
    offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0", "false", "False")
    return {"huggingface_hub": f"{hub}{'' if hub.is_dir() else ' (not created yet)'}",
            "torch_hub": f"{torch_home / 'hub'}{'' if (torch_home / 'hub').is_dir() else ' (not created yet)'}",
            "hub_offline": str(offline)}


def doctor_report() -> dict[str, Any]:
    """The environment of ``env.json`` plus devices, bf16, video backends, extras and caches."""
    import torch

    from sttool.runtime import cpu_bf16_native

    report = environment()
    report.pop("command", None)
    report["cuda_devices"] = [f"{i}: {torch.cuda.get_device_name(i)}, "
                              f"{torch.cuda.get_device_properties(i).total_memory / 2**30:.0f} GiB"
                              for i in range(torch.cuda.device_count())]
    report["cpu_cores"] = os.cpu_count()
    report["cpu_bf16_native"] = cpu_bf16_native()
    report["video_backends"] = _video_backends()
    report["extras"] = {name: importlib.util.find_spec(name) is not None for name in EXTRAS}
    report["caches"] = _caches()
    return report
