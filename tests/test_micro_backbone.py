"""The shipped micro backbone: small enough for the repository, loaded through timm's own pretrained path."""

import timm
import torch
from safetensors.torch import load_file

import sttool
from sttool.models.micro import MICRO_NAME, MICRO_TAG, MICRO_WEIGHTS, ConvStemEmbed


def test_shipped_weights_fit_the_repository_limit():
    assert MICRO_WEIGHTS.is_file() and MICRO_WEIGHTS.stat().st_size <= 10 * 1024 * 1024


def test_timm_loads_the_shipped_file_without_network():
    shipped = load_file(str(MICRO_WEIGHTS))
    model = timm.create_model(f"{MICRO_NAME}.{MICRO_TAG}", pretrained=True, num_classes=10)
    state = model.state_dict()
    assert isinstance(model, timm.models.vision_transformer.VisionTransformer) and isinstance(model.patch_embed, ConvStemEmbed)
    assert len(model.blocks) == 12 and model.patch_embed.patch_size == (8, 8) and model.patch_embed.num_patches == 64
    for key, value in shipped.items():
        assert torch.equal(state[key], value.float()), key
    assert set(state) - set(shipped) == {"head.weight", "head.bias"}  # a fresh head for the new task


def test_weights_hub_in_a_recipe_gives_the_same_backbone():
    model = sttool.build_model(f"{MICRO_NAME}.{MICRO_TAG}", weights="hub", num_classes=10)
    shipped = load_file(str(MICRO_WEIGHTS))
    assert torch.equal(model.blocks[6].mlp.fc1.weight, shipped["blocks.6.mlp.fc1.weight"].float())
    assert torch.equal(model.patch_embed.stem[2].weight, shipped["patch_embed.stem.2.weight"].float())
    assert torch.equal(model.pos_embed, shipped["pos_embed"].float())


def test_the_stem_is_four_relu_convolutions_then_the_projection():
    # an independent reference written with torch.nn.functional, from the module's own weights
    embed = timm.create_model(MICRO_NAME, num_classes=0).patch_embed
    x = torch.randn(2, 3, 64, 64)
    h = x
    for index, stride in zip((0, 2, 4, 6), (2, 1, 2, 1), strict=True):
        conv = embed.stem[index]
        h = torch.relu(torch.nn.functional.conv2d(h, conv.weight, conv.bias, stride=stride, padding=1))
    h = torch.nn.functional.conv2d(h, embed.proj.weight, embed.proj.bias, stride=2, padding=1)  # (2, 128, 8, 8)
    with torch.no_grad():
        assert torch.allclose(embed(x), h.flatten(2).transpose(1, 2), atol=1e-6)
