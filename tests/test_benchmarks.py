"""The prepared GPU benchmark runs on the CPU at tiny sizes, so that it cannot rot before a GPU runs it."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_gpu_benchmark_runs_every_measurement_on_the_cpu(tmp_path):
    done = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu.sh"), str(tmp_path)], capture_output=True, text=True,
                          timeout=600, env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["size"] == "tiny" and results["device"].startswith("CPU")
    assert results["inference"]["speedup"] > 0 and results["inference_compiled"]["compiled"]
    assert set(results["training_step"]["models"]) == {"sparse_tuning", "adaptformer", "full"}
    assert results["real_training"]["steps"] == 4 and 0 <= results["real_training"]["test_top1"] <= 100
    table = (tmp_path / "results.md").read_text()
    assert "inference" in table and "training step" in table and "real training" in table
