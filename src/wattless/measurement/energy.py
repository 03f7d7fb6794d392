"""Analytical energy per inference from MAC and memory-access counts, with published per-op energies.

The bundled table is Horowitz, "Computing's energy problem", ISSCC 2014 (45 nm). Replace it with
another process node by passing ``path=``/``table=`` or setting ``WATTLESS_ENERGY_TABLE`` to a JSON
file of the same layout (see ``energy_45nm.json``). The result is labelled as an estimate.
"""

import json
import math
import os
from collections.abc import Mapping, Sequence
from importlib import resources

from ..errors import ConfigError

ENERGY_TABLE_ENV = "WATTLESS_ENERGY_TABLE"
DEFAULT_BITS = 32
BIAS_BITS = 32  # biases stay fp32, or int32 in int8 formats
_PICO = 1e-12
_INT8_BITS = 8


def load_energy_table(path: str | os.PathLike | None = None) -> dict:
    """The per-operation energy table (pJ) from ``path``, else ``$WATTLESS_ENERGY_TABLE``, else the
    bundled 45 nm one.

    Raises:
        ConfigError: the file is missing or is not valid JSON.
    """
    path = path or os.environ.get(ENERGY_TABLE_ENV)
    if path is None:
        return json.loads(resources.files(__package__).joinpath("energy_45nm.json").read_text())
    try:
        with open(path) as file:
            return json.load(file)
    except FileNotFoundError:
        raise ConfigError(f"energy table not found: {path}; pass an existing JSON file or unset "
                          f"{ENERGY_TABLE_ENV}") from None
    except json.JSONDecodeError as error:
        raise ConfigError(f"energy table {path} is not valid JSON ({error}); "
                          "copy the layout of wattless/measurement/energy_45nm.json") from None


def op_energy_pj(table: Mapping, op: str, bits: int, float_ops: bool = False) -> float:
    """Energy (pJ) of one ``op`` ("add" or "mult") at ``bits`` wide.

    Floating point when ``float_ops`` and the table has ``fp<bits>``; otherwise integer: the table's
    ``int<bits>`` entry, or, without one, int8 scaled by width: mult ∝ bits², add ∝ bits.
    """
    ops = _table_entry(table, "ops")
    if float_ops and f"fp{bits}" in ops:
        return float(_table_entry(table, "ops", f"fp{bits}", op))
    if op in ops.get(f"int{bits}", {}):
        return float(ops[f"int{bits}"][op])
    exponent = 2 if op == "mult" else 1
    return float(_table_entry(table, "ops", "int8", op)) * (bits / _INT8_BITS) ** exponent


def memory_energy_pj_per_bit(table: Mapping, memory: str) -> float:
    """Energy (pJ) to move one bit from/to ``memory`` ("dram" or "sram_8kb"): the 32-bit read energy / 32."""
    return float(_table_entry(table, "memory_32bit_read", memory)) / 32


def estimate_energy(layers: Sequence[Mapping], *, weight_bits: int | Mapping[str, float] = DEFAULT_BITS,
                    act_bits: int | Mapping[str, float] = DEFAULT_BITS, float_ops: bool = True, batch: int = 1,
                    table: Mapping | str | os.PathLike | None = None) -> dict:
    """Estimated energy of one inference, in J per sample, split into compute and memory traffic.

    Per layer (``layers`` from :func:`count_macs` or :func:`count_onnx_macs`), with ``w`` its weight bits
    and ``a`` its input activation bits:

    - compute = macs · (mult + add), both at ``max(w, a)`` bits (see :func:`op_energy_pj`): a layer with
      fp32 inputs computes in fp32 whatever its weights, one with 8-bit inputs and 4-bit weights in int8;
    - weight memory = (weight_numel · w + (params - weight_numel) · 32) · DRAM pJ/bit / batch: weights
      and biases are read from DRAM once per batch and shared by its samples;
    - activation memory = (in_elems + out_elems) · a bits, read and written in on-chip SRAM up to the
      table's ``activation_buffer_bytes`` per layer and sample (whole model batch), the rest in DRAM.

    Args:
        weight_bits: one width for all layers, or layer name -> width (32 for layers not named).
        act_bits: one input width for all layers, or layer name -> width (32 for layers not named).
        float_ops: arithmetic is floating point where the table has that width (fp32, fp16).
        table: a loaded table, a path to one, or None for :func:`load_energy_table`'s default.

    Returns:
        ``{"value": J/sample, "method": "estimate-<table name>", "provenance": "estimated", "batch", "compute_j",
        "weight_memory_j", "activation_memory_j", "layers": [{"name", "j"}]}``, all energies J/sample.
    """
    if batch < 1:
        raise ConfigError(f"batch must be at least 1, got {batch}")
    if not isinstance(table, Mapping):
        table = load_energy_table(table)
    dram_pj_per_bit = memory_energy_pj_per_bit(table, "dram")
    sram_pj_per_bit = memory_energy_pj_per_bit(table, "sram_8kb")
    buffer_bits = table.get("activation_buffer_bytes")
    buffer_bits = math.inf if buffer_bits is None else 8 * float(buffer_bits)
    totals_pj = {"compute": 0.0, "weight_memory": 0.0, "activation_memory": 0.0}
    per_layer = []
    for layer in layers:
        bits = _layer_bits(weight_bits, layer["name"], "weight")
        a_bits = _layer_bits(act_bits, layer["name"], "activation")
        op_bits = max(math.ceil(bits), math.ceil(a_bits))
        bias_numel = layer["params"] - layer["weight_numel"]
        activation_bits = (layer["in_elems"] + layer["out_elems"]) * a_bits
        on_chip = min(activation_bits, buffer_bits)
        parts_pj = {
            "compute": layer["macs"] * (op_energy_pj(table, "mult", op_bits, float_ops)
                                        + op_energy_pj(table, "add", op_bits, float_ops)),
            "weight_memory": (layer["weight_numel"] * bits + bias_numel * BIAS_BITS)
                             * dram_pj_per_bit / batch,
            "activation_memory": on_chip * sram_pj_per_bit + (activation_bits - on_chip) * dram_pj_per_bit,
        }
        for part, value in parts_pj.items():
            totals_pj[part] += value
        per_layer.append({"name": layer["name"], "j": sum(parts_pj.values()) * _PICO})
    return {
        "value": sum(totals_pj.values()) * _PICO,
        "method": f"estimate-{table.get('name', 'custom')}",
        "provenance": "estimated",
        "batch": batch,
        **{f"{part}_j": value * _PICO for part, value in totals_pj.items()},
        "layers": per_layer,
    }


def _layer_bits(bits_by_layer: float | Mapping[str, float], name: str, what: str) -> float:
    bits = bits_by_layer.get(name, DEFAULT_BITS) if isinstance(bits_by_layer, Mapping) else bits_by_layer
    if not 1 <= bits <= 64:
        raise ConfigError(f"{what} bits must be between 1 and 64, got {bits} for layer {name!r}")
    return bits


def _table_entry(table: Mapping, *keys: str):
    """table[k1][k2]..., or a ConfigError naming the missing key."""
    value = table
    for depth, key in enumerate(keys):
        if not isinstance(value, Mapping) or key not in value:
            where = "".join(f"[{k!r}]" for k in keys[:depth + 1])
            raise ConfigError(f"energy table has no entry {where}; copy the layout of "
                              "wattless/measurement/energy_45nm.json")
        value = value[key]
    return value
