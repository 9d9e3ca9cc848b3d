"""Typed binding of YAML data: numbers PyYAML leaves as strings, unknown keys, overrides."""

from dataclasses import dataclass, field
from typing import Literal

import pytest
import yaml

from sttool.config.schema import apply_overrides, bind, to_dict
from sttool.errors import SttoolError


@dataclass
class Optim:
    lr: float = 1e-3
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    name: Literal["adamw", "sgd"] = "adamw"


@dataclass
class Recipe:
    epochs: int = 10
    amp: bool = False
    seed: int | None = None
    optim: Optim = field(default_factory=Optim)


def test_yaml_scientific_notation_becomes_a_float():
    data = yaml.safe_load("optim:\n  lr: 1e-3\n")
    assert data["optim"]["lr"] == "1e-3"  # what PyYAML alone gives
    assert bind(Recipe, data, "r").optim.lr == 1e-3


def test_unknown_key_names_the_closest_valid_key():
    with pytest.raises(SttoolError, match=r"r.optim: unknown key 'lrr'; did you mean 'lr'"):
        bind(Recipe, {"optim": {"lrr": 1}}, "r")


@pytest.mark.parametrize(
    "data,message",
    [
        ({"epochs": 1.5}, "r.epochs: expected an integer"),
        ({"epochs": True}, "r.epochs: expected an integer"),
        ({"amp": "yes"}, "r.amp: expected true or false"),
        ({"optim": {"name": "adam"}}, "did you mean 'adamw'"),
        ({"optim": {"betas": 0.9}}, "r.optim.betas: expected a list"),
        ({"optim": 3}, "r.optim: expected a mapping"),
    ],
)
def test_bad_values_name_their_place(data, message):
    with pytest.raises(SttoolError, match=message.replace("(", r"\(").replace(".", r"\.")):
        bind(Recipe, data, "r")


def test_overrides_set_nested_values_and_delete():
    data = {"optim": {"lr": 1.0, "name": "sgd"}, "epochs": 3}
    apply_overrides(data, ["optim.lr=1e-4", "epochs=5", "seed=7", "~optim.name", "optim.betas=[0.8, 0.9]"])
    recipe = bind(Recipe, data, "r")
    assert (recipe.optim.lr, recipe.epochs, recipe.seed, recipe.optim.name) == (1e-4, 5, 7, "adamw")
    assert recipe.optim.betas == [0.8, 0.9]
    assert to_dict(recipe)["optim"]["lr"] == 1e-4


def test_bad_overrides():
    with pytest.raises(SttoolError, match="expected key=value"):
        apply_overrides({}, ["optim.lr"])
    with pytest.raises(SttoolError, match="no key 'optim.x' to delete"):
        apply_overrides({"optim": {}}, ["~optim.x"])
