"""The technique registry: names, step parsing, config validation and the contract every technique keeps."""

import json

import pytest
import torch
from pydantic import ValidationError

import wattless
from wattless.errors import ConfigError
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


FAST = {"finetune_epochs": 1, "epochs": 2, "hint_epochs": 1, "iterations": 50, "learn_epochs": 1}
"""Shorter training for the contract runs (only the fields a technique has)."""


def fast_config(name: str):
    fields = get_technique(name).config_type.model_fields
    return make_config(name, {key: value for key, value in FAST.items() if key in fields})


@pytest.fixture(scope="module")
def digit_images_cnn(digit_images):
    cnn = wattless.train("cnn", digit_images, model_kwargs={"channels": [8, 16], "hidden": 16}, epochs=1, seed=0)
    return cnn, digit_images


@pytest.fixture(scope="module")
def model_for(trained_mlp, digits, digit_images_cnn):
    """The first of a small MLP and a small CNN the technique applies to (its ``applies_to``), with its data."""

    def pick(name: str):
        for model, data in ((trained_mlp, digits), digit_images_cnn):
            if get_technique(name).applies_to(model.module) is None:
                return model, data
        pytest.fail(f"{name} applies to neither the MLP nor the CNN")

    return pick


def figures(model, data, path) -> dict[str, float]:
    """The figures a technique may claim to reduce (techniques.CLAIMS), of a model and its written file."""
    from wattless.io import deployable_module
    from wattless.measurement.ops import count_params
    from wattless.measurement.profile import layer_profile
    from wattless.packed import layer_weight_bits

    module = deployable_module(model.module)
    params, nonzero = count_params(module)
    profile = layer_profile(model.module, module, data.input_shape)
    weights = [row for row in profile["layers"] if row["weight_bits"] is not None]
    bits = layer_weight_bits(model.module)
    return {"params": params, "nonzero_params": nonzero, "macs": profile["macs"], "bops": profile["bops"],
            "size_bytes": path.stat().st_size,
            "weight_bits": sum(bits.get(row["name"], 32) * row["weight_numel"] for row in weights)}


@pytest.mark.parametrize("name", list_techniques())
def test_every_technique_keeps_the_contract(name, tmp_path, model_for):
    """Through the same call as the CLI, with a fixed seed: the same bytes twice, the changes it claims, forward
    still runs with the same output shape, save/load gives the same outputs."""
    technique = get_technique(name)
    assert technique.summary, "the apply function needs a one-line docstring"
    assert technique.claims, "a technique says what it reduces"
    model, data = model_for(name)
    step = (name, fast_config(name))
    suffix = technique.output_suffix or ".wlz"
    first, second = (wattless.compress(model, data, tmp_path / f"{n}{suffix}", steps=[step], seed=0,
                                       measure_result=False).path for n in ("a", "b"))
    assert first.read_bytes() == second.read_bytes(), "the same seed must write the same bytes"
    assert model.recipe == []  # the input model was left untouched
    if technique.deploys:
        reference = tmp_path / f"fp32{suffix}"
        wattless.export(model, reference)
        assert first.stat().st_size < reference.stat().st_size
        return
    result = wattless.load(first, keep_parametrizations=True)
    assert result.recipe[-1]["technique"] == name
    wattless.save(model, tmp_path / "original.wlz")
    before, after = figures(model, data, tmp_path / "original.wlz"), figures(result, data, first)
    for claim in technique.claims:
        assert after[claim] < before[claim], f"{name} claims fewer {claim}: {before[claim]} -> {after[claim]}"
    x = torch.as_tensor(data.X_test[:20])
    with torch.no_grad():
        out, original = result.module.eval()(x), model.module(x)
        assert out.shape == original.shape and torch.isfinite(out).all()
        assert torch.allclose(wattless.load(first).module(x), out, atol=1e-6)


def test_the_cli_writes_what_the_api_writes(tmp_path, trained_mlp, digits):
    """``wattless compress --step`` is a thin caller of ``wattless.compress``: same inputs, same bytes."""
    from wattless.testing import run_cli

    wattless.save(trained_mlp, tmp_path / "m.wlz")
    step = "prune.magnitude:sparsity=0.6,finetune_epochs=1"
    via_api = wattless.compress(tmp_path / "m.wlz", "digits", tmp_path / "api.wlz", steps=[step], seed=3,
                                measure_result=False).path
    result = run_cli("compress", tmp_path / "m.wlz", "--step", step, "--seed", "3", "-o", tmp_path / "cli.wlz",
                     "--repeats", "1", "--batch", "1", "-q")
    assert result.code == 0, result.err
    assert (tmp_path / "cli.wlz").read_bytes() == via_api.read_bytes()


@pytest.mark.parametrize("name, model_name", [("factorize.tucker", "mlp"), ("factorize.cp", "mlp"),
                                              ("prune.structured", "mobilenet"),
                                              ("distill.hinton", "mobilenet")])
def test_applies_to_says_why_and_the_technique_refuses_alike(name, model_name, digits, digit_images, tmp_path):
    """Where ``applies_to`` gives a reason, running the technique anyway is one clear error, not a traceback."""
    from wattless.models import build_model

    if model_name == "mlp":
        model, data = wattless.train("mlp", digits, model_kwargs={"hidden": [8]}, epochs=1), digits
    else:
        data = digit_images
        spec = {"name": model_name, "kwargs": {"width": 0.25, "groups": 2},  # grouped pointwise convolutions
                "input_shape": [1, 8, 8], "num_outputs": 10}
        model = wattless.WattlessModel(build_model(spec), {"model": spec, "task": "classification", "recipe": []})
    technique = get_technique(name)
    reason = technique.applies_to(model.module)
    assert reason
    with pytest.raises(ConfigError):  # the technique's own checks agree with applies_to
        technique.apply(model.module, fast_config(name), wattless.techniques.Context(data))
    with pytest.raises(ConfigError, match="does not apply to this model"):
        wattless.apply_steps(model, data, [(name, fast_config(name))])


def test_config_versions_are_checked(trained_mlp, tmp_path):
    """A config written by a newer wattless is refused with the fix; an older one is migrated."""
    with pytest.raises(ConfigError, match="version 3 was written by a newer wattless.*upgrade wattless"):
        make_config("prune.magnitude", {"sparsity": 0.5, "version": 3})
    with pytest.raises(ConfigError, match="version"):
        make_config("prune.magnitude", {"version": "one"})
    model = wattless.WattlessModel(trained_mlp.module, {**trained_mlp.meta, "recipe": [
        {"technique": "prune.magnitude", "config": {"sparsity": 0.5, "version": 9}}]})
    wattless.save(model, tmp_path / "future.wlz")
    with pytest.raises(wattless.WattlessError, match="config version 9, newer than this wattless reads"):
        wattless.load(tmp_path / "future.wlz")


@pytest.mark.parametrize("name, given, field, old, new", [
    ("prune.magnitude", {"sparsity": 0.5}, "scope", "layer", "global"),
    ("prune.magnitude", {"sparsity": 0.5}, "schedule", "oneshot", "gradual"),
    ("prune.magnitude", {"sparsity": 0.5}, "lr", 5e-4, 1e-3),
    ("prune.structured", {"ratio": 0.5}, "importance", "l1", "taylor"),
    ("distill.hinton", {"epochs": 1}, "importance", "l1", "taylor"),
    ("distill.fitnets", {"epochs": 1}, "importance", "l1", "taylor"),
])
def test_a_changed_default_keeps_its_old_value_in_configs_stored_before(name, given, field, old, new):
    """Issue 18 changed these defaults (config version 2): a stored version-1 config that leaves the field out
    still means the old default; one that gives it keeps it; a config without a version is new."""
    assert getattr(make_config(name, {**given, "version": 1}), field) == old
    assert getattr(make_config(name, {**given, field: new, "version": 1}), field) == new
    assert getattr(make_config(name, given), field) == new


def test_a_technique_is_found_without_any_list_to_edit():
    from wattless.techniques import _registry

    modules = {technique.function.__module__ for technique in _registry._REGISTRY.values()
               if hasattr(technique, "function")}
    assert "wattless.techniques.quantize.adaround" in modules  # its package __init__ names no module
    assert get_technique("quantize.int8").deploys and get_technique("quantize.int8").output_suffix == ".onnx"
