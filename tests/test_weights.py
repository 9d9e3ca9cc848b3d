"""Backbone weights from local files, offline; clear errors for files that do not fit or are missing."""

import os
import subprocess
import sys

import pytest
import timm
import torch
from safetensors.torch import save_file

from sttool.errors import SttoolError
from sttool.models import build_model
from tests.helpers import export_jax_npz, make_tiny_vit

# timm's own registered tiny ViT (6 blocks, width 64), at 32 px: 4 patches + [CLS]
BACKBONE = "test_vit"
OPTIONS = dict(img_size=32, keep_layers=[2, 4], method="full", head="linear")


def source_model(num_classes: int = 10, seed: int = 7):
    torch.manual_seed(seed)
    return timm.create_model(BACKBONE, img_size=32, num_classes=num_classes).eval()


def write(model, path):
    if path.suffix == ".safetensors":
        save_file(model.state_dict(), str(path))
    elif path.suffix == ".pth":
        torch.save({"model": model.state_dict()}, path)
    else:
        export_jax_npz(model, path)


def assert_backbone_equal(model, reference):
    ref = reference.state_dict()
    for key, value in model.state_dict().items():
        if key in ref and not key.startswith("head."):
            torch.testing.assert_close(value, ref[key], msg=key)


@pytest.mark.parametrize("suffix", [".safetensors", ".pth", ".npz"])
def test_local_files_load_into_the_backbone(tmp_path, suffix):
    source = source_model()
    path = tmp_path / f"weights{suffix}"
    write(source, path)
    model = build_model(BACKBONE, weights=str(path), num_classes=10, keep_rate=1.0, **OPTIONS).eval()
    assert_backbone_equal(model, source)
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():  # same class count: the head fits and is loaded too
        torch.testing.assert_close(model(images), source(images), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("suffix", [".safetensors", ".npz"])
def test_head_of_another_class_count_is_replaced(tmp_path, suffix):
    source = source_model(num_classes=21)
    path = tmp_path / f"weights{suffix}"
    write(source, path)
    model = build_model(BACKBONE, weights=str(path), num_classes=10, **OPTIONS)
    assert_backbone_equal(model, source)
    assert model.head.weight.shape == (10, 64) and model.head.bias.abs().sum() == 0


def test_checkpoint_of_another_size_is_a_one_line_error(tmp_path):
    path = tmp_path / "other.safetensors"
    save_file(make_tiny_vit().state_dict(), str(path))  # 12 blocks of width 48
    with pytest.raises(SttoolError, match=r"does not fit this backbone: '.*' has shape \(.*\) in the file but"):
        build_model(BACKBONE, weights=str(path), **OPTIONS)


def test_missing_file_and_wrong_type(tmp_path):
    with pytest.raises(SttoolError, match="weights file not found"):
        build_model(BACKBONE, weights=str(tmp_path / "nope.pth"), **OPTIONS)
    bad = tmp_path / "weights.txt"
    bad.write_text("x")
    with pytest.raises(SttoolError, match="unknown type '.txt'"):
        build_model(BACKBONE, weights=str(bad), **OPTIONS)


def test_pickled_code_is_never_run(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"model": source_model().state_dict(), "hook": os.getcwd}, path)  # a function: refused
    with pytest.raises(SttoolError, match="weights-only"):
        build_model(BACKBONE, weights=str(path), **OPTIONS)


def test_offline_without_a_file_says_how_to_give_weights(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path)}
    code = "from sttool.models import build_model; build_model('vit_tiny_patch16_224.augreg_in21k', weights='hub')"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "cannot fetch weights for 'vit_tiny_patch16_224.augreg_in21k'" in done.stderr
    assert "weights=PATH" in done.stderr
