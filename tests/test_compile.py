"""torch.compile captures every method in one graph at fixed keep rates (fullgraph: a break is an error)."""

import pytest
import torch

import sttool
from tests.helpers import make_tiny_vit, randomise_adapters

METHODS = ["sparse_tuning", "sparse_tuning_released", "adaptformer", "lora", "full", "linear", "evit+adaptformer"]


@pytest.mark.parametrize("method", METHODS)
def test_fullgraph_capture_equals_eager(method):
    torch._dynamo.reset()
    model = sttool.patch_model(make_tiny_vit(), method=method)
    randomise_adapters(model)
    model.eval()
    x = torch.randn(2, 3, 32, 32)
    compiled = torch.compile(model, fullgraph=True, backend="eager")
    with torch.no_grad():
        assert torch.allclose(compiled(x), model(x), atol=1e-6)


def test_fullgraph_capture_of_exits_and_video():
    torch._dynamo.reset()
    model = sttool.patch_model(make_tiny_vit(), method="sparse_tuning", exit_layers=[4, 8]).eval()
    compiled = torch.compile(model.forward_exits, fullgraph=True, backend="eager")
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert all(torch.allclose(a[1], b[1], atol=1e-6) for a, b in zip(compiled(x), model.forward_exits(x), strict=True))
    video = sttool.patch_model(make_tiny_vit(), method="sparse_tuning", num_frames=4, tubelet=2).eval()
    clip = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        assert torch.allclose(torch.compile(video, fullgraph=True, backend="eager")(clip), video(clip), atol=1e-6)
