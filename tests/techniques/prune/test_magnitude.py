"""Magnitude pruning: exact sparsity for every schedule and scope, per-layer overrides, masks that survive
fine-tuning, the cubic schedule of gradual pruning, the defaults and what they imply, configs stored at version 1,
and one clear error per bad input."""

import math

import pytest
import torch

import wattless
from wattless.api import apply_steps
from wattless.errors import ConfigError
from wattless.techniques import make_config
from wattless.techniques.prune import magnitude
from wattless.techniques.prune.magnitude import (
    WeightMask,
    cubic_sparsity,
    geometric_sparsity,
    magnitude_masks,
    prunable_weights,
)

SCHEDULES = {  # each with the fine-tuning it needs, kept short
    "oneshot": "schedule=oneshot,finetune_epochs=1",
    "iterative": "schedule=iterative,steps=2,finetune_epochs=2",
    "gradual": "schedule=gradual,finetune_epochs=2",
}


def zeros(module):
    return {name: int((m.weight == 0).sum()) for name, m in prunable_weights(module)}


def sizes(module):
    return {name: m.weight.numel() for name, m in prunable_weights(module)}


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("scope", ["layer", "global"])
def test_achieved_sparsity_equals_requested_exactly(digits, trained_mlp, schedule, scope):
    pruned = apply_steps(trained_mlp, digits, [f"prune.magnitude:sparsity=0.9,scope={scope},{SCHEDULES[schedule]}"])
    counts, numel = zeros(pruned.module), sizes(pruned.module)
    if scope == "layer":
        assert counts == {name: round(0.9 * n) for name, n in numel.items()}
    else:
        assert sum(counts.values()) == round(0.9 * sum(numel.values()))


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_masks_hold_during_fine_tuning(digits, trained_mlp, schedule):
    pruned = apply_steps(trained_mlp, digits, [f"prune.magnitude:sparsity=0.8,lr=0.01,{SCHEDULES[schedule]}"])
    for _, layer in prunable_weights(pruned.module):
        chain = layer.parametrizations["weight"]
        assert len(chain) == 1 and isinstance(chain[0], WeightMask)  # re-pruning updated the one mask
        assert torch.equal(layer.weight == 0, chain[0].mask == 0)  # zeros are exactly the masked weights
    before = torch.cat([m.weight.flatten() for _, m in prunable_weights(trained_mlp.module)])
    after = torch.cat([m.weight.detach().flatten() for _, m in prunable_weights(pruned.module)])
    kept = after != 0
    assert not torch.equal(before[kept], after[kept])  # fine-tuning changed the surviving weights


def test_pruning_again_keeps_earlier_zeros(digits, trained_mlp):
    once = apply_steps(trained_mlp, digits, ["prune.magnitude:sparsity=0.5,finetune_epochs=0"])
    twice = apply_steps(once, digits, ["prune.magnitude:sparsity=0.3,finetune_epochs=0"])
    assert zeros(twice.module) == zeros(once.module)  # a lower sparsity never revives a weight
    for _, layer in prunable_weights(twice.module):
        assert len(layer.parametrizations["weight"]) == 1


def test_per_layer_overrides(digits, trained_mlp):
    pruned = apply_steps(trained_mlp, digits, ["prune.magnitude:sparsity=0.8,layer_sparsity={1: 0.25},"
                                               "schedule=gradual,finetune_epochs=1"])
    numel = sizes(pruned.module)
    assert zeros(pruned.module) == {"1": round(0.25 * numel["1"]), "3": round(0.8 * numel["3"])}


def test_defaults_are_the_pruning_studys_best_and_imply_the_rest():
    assert make_config("prune.magnitude", {}).model_dump(include={"scope", "schedule", "lr", "version"}) == {
        "scope": "global", "schedule": "gradual", "lr": 1e-3, "version": 2}
    assert make_config("prune.magnitude", {"layer_sparsity": {"1": 0.25}}).scope == "layer"  # per-layer targets
    assert make_config("prune.magnitude", {"finetune_epochs": 0}).schedule == "oneshot"  # nothing to prune during
    with pytest.raises(ConfigError, match="finetune_epochs >= 1, or schedule=oneshot"):  # a schedule given is kept
        make_config("prune.magnitude", {"finetune_epochs": 0, "schedule": "gradual"})


def test_configs_stored_at_version_1_keep_the_version_1_defaults(digits, trained_mlp, tmp_path):
    """A model file whose recipe holds a version-1 config without scope, schedule or lr (the first release wrote
    no schedule) reads back as layer-wise one-shot pruning at lr 5e-4, as it was run; fields it gives are kept."""
    stored = [{"technique": "prune.magnitude", "config": {"sparsity": 0.5, "finetune_epochs": 1, "version": 1}},
              {"technique": "prune.magnitude", "config": {"sparsity": 0.6, "scope": "global", "lr": 0.01,
                                                          "finetune_epochs": 1, "version": 1}}]
    wattless.save(wattless.WattlessModel(trained_mlp.module, {**trained_mlp.meta, "recipe": stored}),
                  tmp_path / "old.wlz")
    recipe = wattless.load(tmp_path / "old.wlz").recipe
    first, second = (make_config(step["technique"], step["config"]) for step in recipe)
    assert (first.scope, first.schedule, first.lr, first.version) == ("layer", "oneshot", 5e-4, 2)
    assert (second.scope, second.schedule, second.lr) == ("global", "oneshot", 0.01)
    rerun = apply_steps(trained_mlp, digits, [("prune.magnitude", first)])
    old = apply_steps(trained_mlp, digits, ["prune.magnitude:sparsity=0.5,finetune_epochs=1,scope=layer,"
                                            "schedule=oneshot,lr=5e-4"])
    for (_, a), (_, b) in zip(prunable_weights(rerun.module), prunable_weights(old.module), strict=True):
        assert torch.equal(a.weight, b.weight)
    assert zeros(rerun.module) == {name: round(0.5 * n) for name, n in sizes(trained_mlp.module).items()}


def test_gradual_masks_follow_the_cubic_schedule(monkeypatch, digits, trained_mlp):
    """After optimizer step t of an n-step ramp, a layer has round(cubic_sparsity(s, t / n) * size) zeros."""
    seen = []
    real_finetune = magnitude.finetune

    def recording_finetune(model, ctx, epochs, lr, **options):
        def on_step(step):
            options["on_step"](step)
            seen.append(int((model.get_submodule("1").weight == 0).sum()))

        return real_finetune(model, ctx, epochs, lr, **{**options, "on_step": on_step})

    monkeypatch.setattr(magnitude, "finetune", recording_finetune)
    apply_steps(trained_mlp, digits, ["prune.magnitude:sparsity=0.8,scope=layer,schedule=gradual,finetune_epochs=2"])
    ramp = math.ceil(2 * magnitude.GRADUAL_RAMP_FRACTION) * len(seen) // 2  # whole epochs of the two
    numel = sizes(trained_mlp.module)["1"]
    assert seen == [round(cubic_sparsity(0.8, min(t / ramp, 1.0)) * numel) for t in range(1, len(seen) + 1)]


def test_schedule_functions_by_hand():
    assert cubic_sparsity(0.9, 0.0) == 0.0
    assert cubic_sparsity(0.9, 0.5) == pytest.approx(0.9 * (1 - 0.5**3))
    assert cubic_sparsity(0.9, 0.5, initial=0.2) == pytest.approx(0.9 - 0.7 * 0.125)
    assert cubic_sparsity(0.9, 1.0) == 0.9
    assert geometric_sparsity(0.9, 0.5) == pytest.approx(1 - 0.1**0.5)  # keeps sqrt(0.1), then 0.1
    assert geometric_sparsity(0.9, 1.0) == 0.9


def test_global_scope_prunes_small_layers_first():
    layers = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 4))
    with torch.no_grad():
        layers[0].weight.copy_(torch.arange(16.0).reshape(4, 4) / 100 + 0.01)
        layers[1].weight.copy_(torch.arange(16.0).reshape(4, 4) + 1)
    masks = magnitude_masks(layers, 0.25, "global")
    assert masks["0"].sum() == 8 and masks["1"].sum() == 16  # the small layer's weights go first
    masks = magnitude_masks(layers, 0.25, "layer")
    assert masks["0"].sum() == 12 and masks["1"].sum() == 12
    with pytest.raises(ConfigError, match=r"every weight of \['0'\].*scope=layer"):
        magnitude_masks(layers, 0.5, "global")


def test_ties_are_pruned_by_position_to_the_exact_count():
    layer = torch.nn.Linear(10, 1)
    with torch.no_grad():
        layer.weight.fill_(0.5)
    assert magnitude_masks(layer, 0.3, "layer")[""].flatten().tolist() == [0.0] * 3 + [1.0] * 7


@pytest.mark.parametrize("step, message", [
    ("prune.magnitude:sparsity=1.0", "sparsity"),
    ("prune.magnitude:sparsity=-0.1", "sparsity"),
    ("prune.magnitude:layer_sparsity={1: 1.0}", "prune the layer away entirely"),
    ("prune.magnitude:layer_sparsity={1: 0.5},scope=global", "need scope=layer"),
    ("prune.magnitude:layer_sparsity={fc9: 0.5}", r"unknown layers \['fc9'\].*prunable layers: \['1', '3'\]"),
    ("prune.magnitude:schedule=iterative,steps=3,finetune_epochs=2", "finetune_epochs >= 3"),
    ("prune.magnitude:schedule=gradual,finetune_epochs=0", "finetune_epochs >= 1"),
    ("prune.magnitude:sparsity=0.9999,scope=global", "would prune away every weight"),
])
def test_bad_input_is_one_clear_error(digits, trained_mlp, step, message):
    with pytest.raises(ConfigError, match=message):
        apply_steps(trained_mlp, digits, [step])
