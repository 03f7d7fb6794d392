"""Per-layer profile of a PyTorch model: shape, parameters, non-zeros, weight and activation bits, MACs, bit
operations, estimated energy and each layer's share; plus the MicroNet-style complexity counts.

BOPs (bit operations, Baskin et al., 2021 / van Baalen et al., 2020) = MACs x weight bits x activation bits.

The MicroNet challenge score (Gale, Shazeer et al., NeurIPS 2019 MicroNet challenge rules) puts
quantization, pruning and factorization on one scale by counting in 32-bit equivalents:

- parameters: a stored weight of ``b`` bits counts ``b / 32``; zeros of a sparse layer are free, but its
  bitmask costs 1 bit per weight (``numel / 32``); biases count 1 (fp32).
- operations: one multiply per MAC at ``max(weight bits, activation bits) / 32`` and one add at 32 bits
  (accumulation), both skipped for weights that are zero (unstructured sparsity).
- score = params / reference params + ops / reference ops, the reference being the same model dense in
  fp32 (params, 2 x MACs): the fp32 original scores 2.0; lower is better.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ..packed import layer_weight_bits
from .energy import DEFAULT_BITS, estimate_energy
from .ops import count_macs

INPUT_QUANT = "input_quant"  # the attribute activation quantizers are attached under (quantize._fake)


def layer_activation_bits(module: nn.Module) -> dict[str, float]:
    """Input activation bits of every layer with an activation quantizer (``quantize.activations``, QAT with
    ``activations=true``), by layer name; other layers take fp32 inputs."""
    bits = {}
    for name, sub in module.named_modules():
        quantizer = getattr(sub, INPUT_QUANT, None)
        if isinstance(quantizer, nn.Module) and isinstance(getattr(quantizer, "bits", None), torch.Tensor):
            bits[name] = float(quantizer.bits)
    return bits


def layer_profile(model: nn.Module, deployable: nn.Module, input_shape: tuple[int, ...], *,
                  batch: int = 1) -> dict[str, Any]:
    """The per-layer table of ``deployable`` (dense weights of ``model``, which may hold packed ones).

    Returns ``{"layers": [{"name", "type", "shape", "params", "nonzero", "weight_bits", "act_bits", "macs",
    "bops", "energy_j", "energy_share", ...count_macs fields}], "macs", "bops", "energy": estimate_energy(...),
    "micronet": {"params", "ops"}}``. Bits are ``None`` for layers without weights.
    """
    counted = count_macs(deployable, input_shape)
    weight_bits, act_bits = layer_weight_bits(model), layer_activation_bits(model)
    energy = estimate_energy(counted["layers"], weight_bits=weight_bits, act_bits=act_bits, batch=batch)
    energy_by_layer = {row["name"]: row["j"] for row in energy["layers"]}
    named = dict(deployable.named_modules())
    layers = []
    for layer in counted["layers"]:
        weight = getattr(named.get(layer["name"]), "weight", None)
        has_weight = isinstance(weight, torch.Tensor)
        w_bits = weight_bits.get(layer["name"], DEFAULT_BITS) if has_weight else None
        a_bits = act_bits.get(layer["name"], DEFAULT_BITS)
        joules = energy_by_layer.get(layer["name"], 0.0)
        layers.append({**layer, "shape": list(weight.shape) if has_weight else None,
                       "nonzero": int((weight != 0).sum()) if has_weight else None,
                       "weight_bits": w_bits, "act_bits": a_bits,
                       "bops": round(layer["macs"] * (w_bits or DEFAULT_BITS) * a_bits),
                       "energy_j": joules, "energy_share": joules / energy["value"] if energy["value"] else 0.0})
    return {"layers": layers, "macs": counted["total"], "bops": sum(row["bops"] for row in layers),
            "energy": energy, "micronet": micronet_counts(layers)}


def micronet_counts(layers: list[Mapping[str, Any]]) -> dict[str, float]:
    """Parameters and operations in 32-bit equivalents (see the module docstring) from :func:`layer_profile` rows."""
    params = ops = 0.0
    for layer in layers:
        weights, bias = layer["weight_numel"], layer["params"] - layer["weight_numel"]
        nonzero = layer["nonzero"] if layer.get("nonzero") is not None else weights
        bits = layer["weight_bits"] or DEFAULT_BITS
        mask = weights / 32 if nonzero < weights else 0.0
        params += nonzero * bits / 32 + mask + bias
        density = nonzero / weights if weights else 1.0
        ops += layer["macs"] * density * (max(bits, layer["act_bits"]) / 32 + 1.0)
    return {"params": params, "ops": ops}


def micronet_score(counts: Mapping[str, float], reference: Mapping[str, float]) -> float:
    """``params / reference params + ops / reference ops`` (the reference scores 2.0; lower is better)."""
    return counts["params"] / reference["params"] + counts["ops"] / reference["ops"]


def dense_fp32_counts(params: int, macs: int) -> dict[str, float]:
    """MicroNet counts of a dense fp32 model: every parameter 1, every MAC a 32-bit multiply and add."""
    return {"params": float(params), "ops": 2.0 * macs}


def stored_bytes_by_layer(path, layer_names: list[str]) -> dict[str, int]:
    """Bytes each layer's tensors (weights or their packed parts, biases, quantizer buffers) take in the
    ``.wlz`` file at ``path``, as stored, by layer name; tensors of no listed layer are left out."""
    from ..artifact import read_stored_sizes
    from ..io import PACKED_PREFIX

    by_length = sorted(layer_names, key=len, reverse=True)  # "features.1" before "features"
    sizes: dict[str, int] = {}
    for name, nbytes in read_stored_sizes(path).items():
        name = name.removeprefix(PACKED_PREFIX)
        layer = next((layer for layer in by_length if name.startswith(f"{layer}.")), None)
        if layer is not None:
            sizes[layer] = sizes.get(layer, 0) + nbytes
    return sizes
