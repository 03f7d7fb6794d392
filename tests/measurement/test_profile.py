"""Per-layer profile: activation bits from quantizers, BOPs, energy shares, MicroNet counts by hand."""

import pytest
from torch import nn

import wattless
from wattless.api import apply_steps
from wattless.io import deployable_module
from wattless.measurement.profile import (
    dense_fp32_counts,
    layer_activation_bits,
    layer_profile,
    micronet_counts,
    micronet_score,
)


def profile_of(model):
    return layer_profile(model.module, deployable_module(model.module), model.input_shape)


def test_fp32_profile(trained_mlp):
    profile = profile_of(trained_mlp)
    fc1, fc2 = profile["layers"]
    assert fc1["shape"] == [32, 64] and fc2["shape"] == [10, 32]
    assert (fc1["weight_bits"], fc1["act_bits"]) == (32, 32)
    assert fc1["bops"] == 64 * 32 * 32 * 32 and profile["bops"] == (64 * 32 + 32 * 10) * 32 * 32
    assert sum(layer["energy_share"] for layer in profile["layers"]) == pytest.approx(1.0)
    assert profile["energy"]["method"] == "estimate-45nm"
    counts = profile["micronet"]
    assert counts == {"params": 64 * 32 + 32 + 32 * 10 + 10, "ops": 2.0 * (64 * 32 + 32 * 10)}
    assert micronet_score(counts, dense_fp32_counts(64 * 32 + 32 + 330, 64 * 32 + 320)) == pytest.approx(2.0)


def test_activation_quantizers_count_in_bops_and_energy(trained_mlp, digits):
    quantized = apply_steps(trained_mlp, digits, ["quantize.qat:bits=4,activations=true,act_bits=8,epochs=1"])
    assert layer_activation_bits(quantized.module) == {"1": 8.0, "3": 8.0}
    fp32, low = profile_of(trained_mlp), profile_of(quantized)
    assert low["bops"] == (64 * 32 + 32 * 10) * 4 * 8
    assert low["energy"]["compute_j"] < fp32["energy"]["compute_j"] / 15  # int8 vs fp32 arithmetic


def test_micronet_counts_by_hand():
    # 100 weights, 20 non-zero at 4 bits, 10 biases, 100 MACs with 8-bit inputs
    layer = {"weight_numel": 100, "params": 110, "nonzero": 20, "weight_bits": 4, "act_bits": 8, "macs": 100}
    counts = micronet_counts([layer])
    assert counts["params"] == pytest.approx(20 * 4 / 32 + 100 / 32 + 10)
    assert counts["ops"] == pytest.approx(100 * 0.2 * (8 / 32 + 1))
    dense = micronet_counts([{**layer, "nonzero": 100, "weight_bits": 32, "act_bits": 32}])
    assert dense == dense_fp32_counts(110, 100)


def test_pruning_lowers_the_micronet_score(trained_mlp, digits):
    pruned = apply_steps(trained_mlp, digits, ["prune.magnitude:sparsity=0.8,finetune_epochs=0"])
    reference = dense_fp32_counts(64 * 32 + 32 + 330, 64 * 32 + 320)
    assert micronet_score(profile_of(pruned)["micronet"], reference) < 0.6


def test_a_layer_without_weights_has_no_bits():
    model = wattless.io.WattlessModel(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)), {
        "model": {"name": "x", "input_shape": [2, 2]}, "task": "classification"})
    profile = layer_profile(model.module, model.module, (2, 2))
    assert [layer["name"] for layer in profile["layers"]] == ["1"]
    assert profile["layers"][0]["shape"] == [2, 4] and profile["layers"][0]["act_bits"] == 32
