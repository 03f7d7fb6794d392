"""The energy estimate against hand-computed values (Horowitz 45 nm, pJ), and table overrides."""

from __future__ import annotations

import json

import pytest

from wattless.errors import ConfigError
from wattless.measurement import count_macs, estimate_energy, load_energy_table, op_energy_pj
from wattless.measurement.energy import ENERGY_TABLE_ENV

PJ = 1e-12
DRAM_PJ_PER_BIT, SRAM_PJ_PER_BIT = 640 / 32, 5 / 32

# A 4 -> 3 -> 2 MLP: 12 + 6 MACs, 12 + 6 weights, 3 + 2 biases, activations 4 -> 3 -> 2.
TWO_LAYERS = [
    {"name": "fc1", "type": "Linear", "macs": 12, "params": 15, "weight_numel": 12,
     "in_elems": 4, "out_elems": 3},
    {"name": "fc2", "type": "Linear", "macs": 6, "params": 8, "weight_numel": 6,
     "in_elems": 3, "out_elems": 2},
]
ACTIVATION_ELEMS = 4 + 3 + 3 + 2


def test_fp32_parts_match_hand_computation():
    result = estimate_energy(TWO_LAYERS)

    assert result["method"] == "estimate-45nm"
    assert result["compute_j"] == pytest.approx(18 * (3.7 + 0.9) * PJ)
    assert result["weight_memory_j"] == pytest.approx((18 + 5) * 32 * DRAM_PJ_PER_BIT * PJ)
    assert result["activation_memory_j"] == pytest.approx(ACTIVATION_ELEMS * 32 * SRAM_PJ_PER_BIT * PJ)
    parts = result["compute_j"] + result["weight_memory_j"] + result["activation_memory_j"]
    assert result["value"] == pytest.approx(parts)
    assert sum(layer["j"] for layer in result["layers"]) == pytest.approx(result["value"])


def test_weights_are_read_once_per_batch():
    batch_1, batch_8 = estimate_energy(TWO_LAYERS, batch=1), estimate_energy(TWO_LAYERS, batch=8)

    assert batch_8["batch"] == 8
    assert batch_8["weight_memory_j"] == pytest.approx(batch_1["weight_memory_j"] / 8)
    assert batch_8["compute_j"] == batch_1["compute_j"]
    assert batch_8["activation_memory_j"] == batch_1["activation_memory_j"]


def test_int8_against_fp32():
    fp32 = estimate_energy(TWO_LAYERS)
    int8 = estimate_energy(TWO_LAYERS, weight_bits=8, act_bits=8, float_ops=False)

    assert int8["compute_j"] == pytest.approx(18 * (0.2 + 0.03) * PJ)
    assert fp32["compute_j"] / int8["compute_j"] == pytest.approx(4.6 / 0.23)
    # int8 weights, fp32/int32 biases
    assert int8["weight_memory_j"] == pytest.approx((18 * 8 + 5 * 32) * DRAM_PJ_PER_BIT * PJ)
    assert fp32["activation_memory_j"] / int8["activation_memory_j"] == pytest.approx(4)


def test_per_layer_weight_bits_default_to_32():
    result = estimate_energy(TWO_LAYERS, weight_bits={"fc1": 4}, act_bits=8, float_ops=False)

    fc1, fc2 = result["layers"]
    # fc1 computes at max(4, 8) = 8 bits, fc2 at 32 bits
    fc1_pj = 12 * 0.23 + (12 * 4 + 3 * 32) * DRAM_PJ_PER_BIT + (4 + 3) * 8 * SRAM_PJ_PER_BIT
    fc2_pj = 6 * (3.1 + 0.1) + (6 * 32 + 2 * 32) * DRAM_PJ_PER_BIT + (3 + 2) * 8 * SRAM_PJ_PER_BIT
    assert (fc1["name"], fc1["j"]) == ("fc1", pytest.approx(fc1_pj * PJ))
    assert (fc2["name"], fc2["j"]) == ("fc2", pytest.approx(fc2_pj * PJ))


@pytest.mark.parametrize(("op", "bits", "float_ops", "pj"), [
    ("mult", 32, True, 3.7), ("add", 16, True, 0.4),         # floating point from the table
    ("mult", 32, False, 3.1), ("add", 16, False, 0.05),      # integer from the table
    ("mult", 4, False, 0.2 / 4), ("add", 4, False, 0.03 / 2),  # scaled from int8: bits^2 and bits
    ("mult", 16, False, 0.2 * 4), ("mult", 8, True, 0.2),    # no fp8 entry: integer
])
def test_op_energy(op, bits, float_ops, pj):
    assert op_energy_pj(load_energy_table(), op, bits, float_ops) == pytest.approx(pj)


def test_bundled_table_cites_horowitz():
    table = load_energy_table()
    assert "Horowitz" in table["source"] and "ISSCC" in table["source"]
    assert table["memory_32bit_read"] == {"sram_8kb": 5.0, "dram": 640.0}


def test_table_override_by_path_and_environment(tmp_path, monkeypatch):
    halved = load_energy_table()
    halved["name"] = "half-45nm"
    halved["ops"] = {kind: {op: pj / 2 for op, pj in ops.items()} for kind, ops in halved["ops"].items()}
    halved["memory_32bit_read"] = {memory: pj / 2 for memory, pj in halved["memory_32bit_read"].items()}
    path = tmp_path / "half.json"
    path.write_text(json.dumps(halved))
    reference = estimate_energy(TWO_LAYERS)["value"]

    by_path = estimate_energy(TWO_LAYERS, table=path)
    monkeypatch.setenv(ENERGY_TABLE_ENV, str(path))
    by_environment = estimate_energy(TWO_LAYERS)

    for result in (by_path, by_environment):
        assert result["method"] == "estimate-half-45nm"
        assert result["value"] == pytest.approx(reference / 2)


def test_bad_tables_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        estimate_energy(TWO_LAYERS, table=tmp_path / "missing.json")
    incomplete = tmp_path / "incomplete.json"
    incomplete.write_text(json.dumps({"name": "x", "ops": {}}))
    with pytest.raises(ConfigError, match="memory_32bit_read"):
        estimate_energy(TWO_LAYERS, table=incomplete)


def test_estimate_from_counted_layers(mlp):
    layers = count_macs(mlp, (784,))["layers"]
    result = estimate_energy(layers)
    assert result["compute_j"] == pytest.approx((784 * 300 + 300 * 10) * 4.6 * PJ)


def test_per_layer_activation_bits_set_the_arithmetic_width():
    result = estimate_energy(TWO_LAYERS, weight_bits={"fc1": 4, "fc2": 4}, act_bits={"fc1": 8})
    fc1, fc2 = result["layers"]
    # fc1: 8-bit inputs and 4-bit weights -> int8 arithmetic; fc2: fp32 inputs -> fp32 arithmetic
    compute = 12 * (0.2 + 0.03) + 6 * (3.7 + 0.9)
    assert result["compute_j"] == pytest.approx(compute * PJ)
    assert result["activation_memory_j"] == pytest.approx(((4 + 3) * 8 + (3 + 2) * 32) * SRAM_PJ_PER_BIT * PJ)
    assert fc1["j"] < fc2["j"] * 3


def test_activations_beyond_the_on_chip_buffer_are_charged_at_dram_price():
    table = load_energy_table()
    table = {**table, "activation_buffer_bytes": 2}  # 16 bits on chip per layer and sample
    result = estimate_energy(TWO_LAYERS, act_bits=8, weight_bits=8, float_ops=False, table=table)
    expected = sum(16 * SRAM_PJ_PER_BIT + (elems * 8 - 16) * DRAM_PJ_PER_BIT for elems in (4 + 3, 3 + 2))
    assert result["activation_memory_j"] == pytest.approx(expected * PJ)
    unlimited = estimate_energy(TWO_LAYERS, act_bits=8, weight_bits=8, float_ops=False,
                                table={**table, "activation_buffer_bytes": None})
    assert unlimited["activation_memory_j"] == pytest.approx(ACTIVATION_ELEMS * 8 * SRAM_PJ_PER_BIT * PJ)


def test_the_bundled_buffer_is_one_mebibyte():
    assert load_energy_table()["activation_buffer_bytes"] == 2**20


@pytest.mark.parametrize("bits", [0, 65, -8])
def test_bits_out_of_range_are_config_errors(bits):
    with pytest.raises(ConfigError, match="bits must be between 1 and 64"):
        estimate_energy(TWO_LAYERS, act_bits={"fc2": bits})
