"""What a bug report needs, in one call (``sttool env``): versions, devices, the CPU's kernels and bf16,
the video backends that load, the optional extras, and where weights and data are cached.

Built on ``environment()`` (what every run records in ``env.json``); nothing is downloaded or written.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from sttool.runs.folder import environment

EXTRAS = ("matplotlib", "onnx", "onnxruntime", "tensorboard", "wandb", "mlflow", "mlxtend", "skimage")


# Each backend is imported in a child process: decord ships its own FFmpeg libraries, and loading them
# into this process would change what PyAV's encoders find (libvpx fails to open after decord loads).
_PROBES = {
    "torchcodec": "from sttool.data.video.backends import load_torchcodec as load; load()\n"
                  "from importlib.metadata import version; print(version('torchcodec'))",
    "decord": "from sttool.data.video.backends import load_decord as load; print(load().__version__)",
    "pyav": "import av; print(av.__version__)",
}


def _video_backends() -> dict[str, str]:
    """Each backend: its version when it loads, else the last line of why it does not."""
    found: dict[str, str] = {}
    for name, code in _PROBES.items():
        try:
            done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
        except subprocess.TimeoutExpired:
            found[name] = "does not load: the import took over 120 s"
            continue
        lines = (done.stdout if done.returncode == 0 else done.stderr).strip().splitlines() or ["no output"]
        found[name] = f"loads ({lines[-1]})" if done.returncode == 0 else f"does not load: {lines[-1]}"
    return found


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
