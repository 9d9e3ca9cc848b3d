"""Shared fixtures. Tests never download anything: the hub is switched off before timm is imported."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

from tests.helpers import make_tiny_vit  # noqa: E402

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models run fastest on one thread, and do not stall when the other core is busy."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def tiny_vit():
    return make_tiny_vit()


@pytest.fixture
def images() -> torch.Tensor:
    torch.manual_seed(1)
    return torch.randn(4, 3, 32, 32)


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory):
    """A very small synthetic set (images with masks, and motion videos), made once per test session."""
    from sttool.data import SyntheticOptions, make_synthetic

    root = tmp_path_factory.mktemp("synthetic")
    make_synthetic(SyntheticOptions(out=str(root), images_per_class=(6, 2, 2), videos_per_class=(3, 1, 1), num_frames=8))
    return root
