"""The shipped micro backbone: small enough for the repository, loaded through timm's own pretrained path."""

import timm
import torch
from safetensors.torch import load_file

import sttool
from sttool.models.micro import MICRO_WEIGHTS


def test_shipped_weights_fit_the_repository_limit():
    assert MICRO_WEIGHTS.is_file() and MICRO_WEIGHTS.stat().st_size <= 10 * 1024 * 1024


def test_timm_loads_the_shipped_file_without_network():
    shipped = load_file(str(MICRO_WEIGHTS))
    model = timm.create_model("vit_micro_patch8_64.synthetic_pretrain", pretrained=True, num_classes=10)
    state = model.state_dict()
    assert len(model.blocks) == 12 and model.patch_embed.patch_size == (8, 8)
    for key, value in shipped.items():
        assert torch.equal(state[key], value.float()), key
    assert set(state) - set(shipped) == {"head.weight", "head.bias"}  # a fresh head for the new task


def test_weights_hub_in_a_recipe_gives_the_same_backbone():
    model = sttool.build_model("vit_micro_patch8_64.synthetic_pretrain", weights="hub", num_classes=10)
    shipped = load_file(str(MICRO_WEIGHTS))
    assert torch.equal(model.blocks[6].mlp.fc1.weight, shipped["blocks.6.mlp.fc1.weight"].float())
    assert torch.equal(model.pos_embed, shipped["pos_embed"].float())
