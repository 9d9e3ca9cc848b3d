"""The command line: help, version, profile output, and one-line errors without tracebacks."""

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from sttool import __version__
from sttool.cli.main import app

runner = CliRunner()


def test_help_lists_the_five_subcommands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for name in ("prepare", "finetune", "evaluate", "profile", "visualize"):
        assert name in result.output


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and __version__ in result.output


def test_python_dash_m_is_the_command():
    """``torchrun -m sttool`` needs the package to run as a module."""
    result = subprocess.run([sys.executable, "-m", "sttool", "--version"], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == f"sttool {__version__}"


def test_profile_gflops_json_has_the_paper_figures():
    result = runner.invoke(app, ["profile", "--gflops", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    for key in ("gflops", "dense_gflops", "tokens_per_stage", "params_total", "params_trainable"):
        assert key in report
    assert report["tokens_per_stage"] == [197, 140, 100, 72]
    assert round(report["dense_gflops"], 2) == 17.58
    assert abs(report["gflops"] - 11.7) < 0.117
    assert round(report["params_trainable_no_head"] / 1e6, 2) == 1.09


def test_profile_table_and_options():
    result = runner.invoke(app, ["profile", "--method", "evit+adaptformer", "--keep-rate", "0.5"])
    assert result.exit_code == 0, result.output
    assert "197 > 100 > 52 > 28" in result.output


def test_profile_reads_the_model_section_of_a_recipe(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("model:\n  backbone: vit_small_patch16_224\n  keep_rate: 0.6\n")
    result = runner.invoke(app, ["profile", str(recipe), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["model"]["backbone"] == "vit_small_patch16_224"
    assert report["tokens_per_stage"] == [197, 120, 74, 46]


@pytest.mark.parametrize(
    "args,message",
    [
        (["--method", "adaptformr"], "did you mean 'adaptformer'"),
        (["--keep-rate", "1.5"], "keep_rate: 1.5 is outside (0, 1]"),
        (["--keep-rate", "0"], "keep_rate: 0.0 is outside (0, 1]"),
        (["--keep-layers", "4,7,13"], "keep_layers: [13] outside the backbone's blocks 1..12"),
        (["--keep-layers", "4,x"], "--keep-layers: '4,x'"),
        (["--backbone", "vit_bse_patch16_224"], "did you mean 'vit_base_patch16_224'"),
        (["--backbone", "resnet50"], "needs a timm VisionTransformer"),
    ],
)
def test_bad_model_options_give_one_line_errors(args, message):
    result = runner.invoke(app, ["profile", *args])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_unknown_recipe_key_names_the_closest(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("model:\n  keep_rat: 0.6\n")
    result = runner.invoke(app, ["profile", str(recipe)])
    assert result.exit_code == 2 and "did you mean 'keep_rate'" in result.output


def test_env_reports_what_a_bug_report_needs():
    import importlib.util

    import timm
    import torch

    from sttool.runtime import cpu_bf16_native

    decord_before = "decord" in sys.modules
    result = CliRunner().invoke(app, ["env", "--json"])
    assert result.exit_code == 0, result.output
    assert ("decord" in sys.modules) == decord_before  # probed in a child: its FFmpeg would break PyAV's encoders here
    report = json.loads(result.output)
    assert (report["torch"], report["timm"]) == (torch.__version__, timm.__version__)
    assert report["cpu_bf16_native"] == cpu_bf16_native()
    assert report["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert len(report["cuda_devices"]) == torch.cuda.device_count()
    assert report["video_backends"]["pyav"].startswith("loads") == (importlib.util.find_spec("av") is not None)
    assert report["extras"]["matplotlib"] == (importlib.util.find_spec("matplotlib") is not None)
    table = CliRunner().invoke(app, ["env"])
    assert table.exit_code == 0 and "cpu_bf16_native" in table.output and "video_backends" in table.output
