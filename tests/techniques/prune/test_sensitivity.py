"""Sensitivity-driven pruning: measured per-layer curves, a byte budget shared out by them, gradual pruning."""

import math

import numpy as np
import pytest
import torch

import wattless
from wattless.errors import ConfigError
from wattless.recipe import Recipe
from wattless.techniques import make_config
from wattless.techniques.prune.magnitude import prunable_weights
from wattless.techniques.prune.sensitivity import (
    GRID,
    allocate,
    estimated_bits,
    saturation_caps,
    sensitivity_curves,
)


def test_estimated_bits_are_position_entropy_plus_value_bits():
    assert estimated_bits(100, 0.5, 3.0) == pytest.approx(100 * (1.0 + 0.5 * 3.0))
    kept = 0.02
    entropy = -(kept * math.log2(kept) + (1 - kept) * math.log2(1 - kept))
    assert estimated_bits(1000, 0.98, 2.0) == pytest.approx(1000 * (entropy + kept * 2.0))
    assert estimated_bits(10, 0.0, 4.0) == pytest.approx(40.0)  # dense: no positions, 4 bits each


def test_a_big_insensitive_layer_gives_up_more_than_a_small_sensitive_one():
    grid = (0.0, 0.5, 0.9, 0.99)
    curves = {"big": [0.0, 0.01, 0.05, 0.3], "small": [0.0, 0.2, 0.8, 2.0]}
    weights = {"big": 10_000, "small": 100}
    # in whole bits per layer, as the allocation counts them (rounded up, so the choice never exceeds the budget)
    budget = math.ceil(estimated_bits(10_000, 0.9, 3.0)) + math.ceil(estimated_bits(100, 0.0, 3.0))
    chosen = allocate(curves, weights, budget, 3.0, grid=grid, max_sparsity=0.99)
    assert chosen == {"big": 0.9, "small": 0.0}
    assert sum(estimated_bits(weights[n], s, 3.0) for n, s in chosen.items()) <= budget


def test_a_tighter_budget_prunes_more_and_always_fits():
    grid = (0.0, 0.5, 0.9, 0.99)
    curves = {"a": [0.0, 0.02, 0.1, 0.5], "b": [0.0, 0.05, 0.3, 1.0]}
    weights = {"a": 5_000, "b": 2_000}
    dense = sum(estimated_bits(n, 0.0, 3.0) for n in weights.values())
    previous = None
    for fraction in (0.5, 0.2, 0.05):
        chosen = allocate(curves, weights, dense * fraction, 3.0, grid=grid, max_sparsity=0.99)
        assert sum(estimated_bits(weights[n], s, 3.0) for n, s in chosen.items()) <= dense * fraction
        if previous is not None:
            assert all(chosen[n] >= previous[n] for n in weights)
        previous = chosen


def test_the_exact_allocation_takes_a_point_a_lagrangian_cannot_reach():
    # Bits at sparsity 0 / 0.5 / 0.9: "a" 3000 / 2500 / 769, "b" 300 / 250 / 77. "a"'s 0.5 point (loss 0.3) lies
    # above the chord from 0.9 (1.0) to 0.0 (0.0), so no multiplier ever picks it: a Lagrangian gives {a: 0.9,
    # b: 0.0} (loss 1.0, 1,069 bits, 1,731 unused). The knapsack spends the budget exactly on {a: 0.5, b: 0.0}.
    grid = (0.0, 0.5, 0.9)
    curves = {"a": [0.0, 0.3, 1.0], "b": [0.0, 1.0, 3.0]}
    weights = {"a": 1000, "b": 100}
    budget = estimated_bits(1000, 0.5, 3.0) + estimated_bits(100, 0.0, 3.0)  # 2,800 bits
    chosen = allocate(curves, weights, budget, 3.0, grid=grid, max_sparsity=0.99)
    assert chosen == {"a": 0.5, "b": 0.0}
    assert sum(estimated_bits(weights[n], s, 3.0) for n, s in chosen.items()) <= budget
    assert allocate(curves, weights, budget - 1, 3.0, grid=grid, max_sparsity=0.99) == {"a": 0.9, "b": 0.0}


def test_saturation_caps_stop_where_a_curve_nears_the_removed_layers_damage():
    grid = (0.0, 0.5, 0.9, 0.99)
    curves = {"flattening": [0.0, 0.5, 1.5, 1.9], "steady": [0.0, 0.1, 0.5, 1.2]}
    removed = {"flattening": 2.0, "steady": 2.0}
    assert saturation_caps(curves, removed, 0.7, grid) == {"flattening": 0.5, "steady": 0.99}
    assert saturation_caps(curves, removed, 1.0, grid) == {"flattening": 0.99, "steady": 0.99}  # 1: no cap


def test_a_capped_layer_stays_at_its_cap_and_the_others_give_up_the_difference():
    # Saturated one-shot curves make the big layer's last steps look nearly free: uncapped it takes 0.99. Capped at
    # 0.9, the small layer prunes instead, and the choice still fits the budget.
    grid = (0.0, 0.5, 0.9, 0.99)
    curves = {"big": [0.0, 0.1, 1.5, 1.6], "small": [0.0, 0.05, 0.3, 1.0]}
    weights = {"big": 10_000, "small": 2_000}
    budget = math.ceil(estimated_bits(10_000, 0.9, 3.0)) + math.ceil(estimated_bits(2_000, 0.9, 3.0))
    assert allocate(curves, weights, budget, 3.0, grid=grid) == {"big": 0.99, "small": 0.0}
    capped = allocate(curves, weights, budget, 3.0, grid=grid, caps={"big": 0.9})
    assert capped == {"big": 0.9, "small": 0.9}
    assert sum(estimated_bits(weights[n], s, 3.0) for n, s in capped.items()) <= budget


def test_caps_that_leave_the_budget_out_of_reach_say_so():
    with pytest.raises(ConfigError, match="or saturation"):
        allocate({"a": [0.0, 0.1, 0.2]}, {"a": 1000}, estimated_bits(1000, 0.9, 3.0), 3.0, grid=(0.0, 0.5, 0.9),
                 caps={"a": 0.5})


def test_a_budget_out_of_reach_names_the_largest_ratio_possible():
    with pytest.raises(ConfigError, match=r"use a size_ratio up to \d+ or raise max_sparsity"):
        allocate({"a": [0.0, 0.1]}, {"a": 1000}, 1.0, 3.0, grid=(0.0, 0.9), max_sparsity=0.99)


def test_curves_start_at_zero_never_decrease_and_leave_the_model_as_it_was(trained_mlp, digits):
    net = trained_mlp.copy().module
    before = {name: layer.weight.detach().clone() for name, layer in prunable_weights(net)}
    curves = sensitivity_curves(net, digits.X_train[:256], digits.y_train[:256], "classification")
    assert set(curves) == set(before)
    for curve in curves.values():
        assert len(curve) == len(GRID) and curve[0] == pytest.approx(0.0, abs=1e-6)
        assert all(later >= earlier for earlier, later in zip(curve, curve[1:], strict=False))
        assert curve[-1] > 0.1  # 99.5% of one layer's weights gone hurts
    assert all(torch.equal(layer.weight, before[name]) for name, layer in prunable_weights(net))


def test_the_technique_prunes_each_layer_to_its_allocation_within_the_budget(trained_mlp, digits, tmp_path):
    step = ("prune.sensitivity", make_config("prune.sensitivity", {"size_ratio": 20, "finetune_epochs": 1,
                                                                   "samples": 256}))
    out = wattless.compress(trained_mlp, digits, tmp_path / "auto.wlz", steps=[step], seed=0,
                            measure_result=False).path
    pruned = wattless.load(out).module
    layers = prunable_weights(pruned)
    sparsities = {name: float((layer.weight == 0).float().mean()) for name, layer in layers}
    assert all(any(abs(s - g) < 0.01 for g in GRID) for s in sparsities.values()), sparsities
    budget = 32 * sum(layer.weight.numel() for _, layer in layers) / 20
    assert sum(estimated_bits(layer.weight.numel(), sparsities[name], 3.0) for name, layer in layers) <= budget * 1.01


def test_zero_epochs_prunes_at_once_and_the_shipped_recipe_loads(trained_mlp, digits, tmp_path):
    step = ("prune.sensitivity", make_config("prune.sensitivity", {"size_ratio": 10, "finetune_epochs": 0,
                                                                   "samples": 128}))
    out = wattless.compress(trained_mlp, digits, tmp_path / "once.wlz", steps=[step], seed=0,
                            measure_result=False).path
    assert wattless.load(out).recipe[-1]["technique"] == "prune.sensitivity"
    assert Recipe.load("deep-compression-auto").step_names == ["prune.sensitivity", "share.kmeans"]


def test_distillation_from_the_unpruned_model_keeps_the_allocation_and_changes_the_training(trained_mlp, digits,
                                                                                              tmp_path):
    def pruned(**fields):
        cfg = make_config("prune.sensitivity", {"size_ratio": 8, "finetune_epochs": 1, "samples": 128, **fields})
        path = wattless.compress(trained_mlp, digits, tmp_path / f"{len(fields)}.wlz", steps=[("prune.sensitivity",
                                 cfg)], seed=0, measure_result=False).path
        return dict(prunable_weights(wattless.load(path).module))

    plain, taught = pruned(), pruned(distill_alpha=0.5, temperature=2.0)
    for name, layer in plain.items():
        assert int((layer.weight == 0).sum()) == int((taught[name].weight == 0).sum())  # the same allocation
    assert any(not torch.equal(layer.weight, taught[name].weight) for name, layer in plain.items())


def test_saturation_keeps_every_layer_short_of_its_flat_curve(trained_mlp, digits, tmp_path):
    net = trained_mlp.copy().module
    rows = np.sort(np.random.default_rng(0).choice(len(digits.X_train), 128, replace=False))  # the technique's rows
    curves = sensitivity_curves(net, digits.X_train[rows], digits.y_train[rows], "classification", GRID + (1.0,))
    caps = saturation_caps({n: c[:-1] for n, c in curves.items()}, {n: c[-1] for n, c in curves.items()}, 0.5)
    assert caps["1"] < 0.95  # uncapped, this budget takes layer 1 to 0.95
    step = ("prune.sensitivity", make_config("prune.sensitivity", {"size_ratio": 40, "finetune_epochs": 0,
                                                                   "samples": 128, "saturation": 0.5}))
    out = wattless.compress(trained_mlp, digits, tmp_path / "capped.wlz", steps=[step], seed=0,
                            measure_result=False).path
    for name, layer in prunable_weights(wattless.load(out).module):
        assert float((layer.weight == 0).float().mean()) <= caps[name] + 0.01, name
