"""The technique registry: names, step parsing, config validation and the contract every technique keeps."""

import dataclasses
import json

import pytest
import torch
from pydantic import ValidationError

import wattless
from wattless.api import apply_steps
from wattless.errors import ConfigError
from wattless.io import load, save
from wattless.techniques import get_technique, list_techniques, make_config, parse_step


def test_parse_step_reads_yaml_scalars():
    name, cfg = parse_step("prune.magnitude:sparsity=0.75,scope=global,finetune_epochs=0")
    assert name == "prune.magnitude"
    assert (cfg.sparsity, cfg.scope, cfg.finetune_epochs) == (0.75, "global", 0)


def test_parse_step_keeps_lists_and_mappings_whole():
    name, cfg = parse_step("quantize.ptq:bits=4,skip=[1],layer_bits={3: 8, 5: 6},method=midrise")
    assert (cfg.bits, cfg.skip, cfg.layer_bits, cfg.method) == (4, ["1"], {"3": 8, "5": 6}, "midrise")


@pytest.mark.parametrize("text, message", [
    ("prune.magic:sparsity=0.5", "unknown technique 'prune.magic'.*prune.magnitude"),
    ("prune.magnitude:sparsty=0.5", "sparsty.*fields: sparsity"),
    ("prune.magnitude:sparsity=1.5", "sparsity"),
    ("prune.magnitude:scope=everywhere", "scope"),
    ("prune.magnitude:sparsity", "key=value"),
])
def test_bad_steps_name_the_problem(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_step(text)


@pytest.mark.parametrize("name", list_techniques())
def test_config_round_trips_through_json(name):
    cfg = make_config(name)
    assert make_config(name, json.loads(json.dumps(cfg.model_dump(mode="json")))) == cfg
    with pytest.raises(ValidationError):  # frozen: a config cannot change after validation
        cfg.version = 99


CONV_ONLY = {"factorize.tucker", "factorize.cp"}
"""Techniques for convolutions: their contract is checked on a small CNN on the digits as 1x8x8 images."""


@pytest.fixture(scope="module")
def digit_images_cnn(digits):
    images = dataclasses.replace(digits, **{f"X_{s}": getattr(digits, f"X_{s}").reshape(-1, 1, 8, 8)
                                            for s in ("train", "val", "test")})
    return wattless.train("cnn", images, model_kwargs={"channels": [8, 16], "hidden": 16}, epochs=1, seed=0), images


@pytest.mark.parametrize("name", list_techniques())
def test_every_technique_keeps_the_contract(name, tmp_path, digits, trained_mlp, request):
    """Forward still runs with the same output shape and no NaN; save/load gives the same outputs."""
    technique = get_technique(name)
    assert technique.summary, "the apply function needs a one-line docstring"
    if name in CONV_ONLY:
        trained_mlp, digits = request.getfixturevalue("digit_images_cnn")
    result = apply_steps(trained_mlp, digits, [(name, make_config(name))])
    x = torch.as_tensor(digits.X_test[:20])
    with torch.no_grad():
        out = result.module.eval()(x)
        original = trained_mlp.module(x)
    assert out.shape == original.shape
    assert torch.isfinite(out).all()
    assert result.recipe[-1]["technique"] == name
    assert trained_mlp.recipe == []  # the input model was left untouched
    save(result, tmp_path / "r.wlz")
    with torch.no_grad():
        assert torch.allclose(load(tmp_path / "r.wlz").module(x), out, atol=1e-6)
