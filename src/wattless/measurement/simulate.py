"""Energy and latency of a model on an accelerator design, simulated with ZigZag (KU Leuven; ``pip install
wattless[hw]``): it searches the spatial and temporal mapping of every Conv/Gemm/MatMul layer onto the design's
array and memory hierarchy and prices the accesses with the design's own per-access energies.

Each layer is simulated alone (a one-node ONNX model cut from the whole) with the precisions the model really has:
weight bits from its packed form, input activation bits from an attached activation quantizer (32 otherwise), the
partial sums at twice the activations. ZigZag prices a MAC at the array's ``unit_energy`` whatever its bits, so
lower precision saves energy there only through the bytes that memories move; it does not model sparsity (pruned
weights cost as much as others): the record says so. Results are cached per (layer, precisions, design, mapping,
ZigZag version) in ``~/.cache/wattless/zigzag`` (``WATTLESS_CACHE`` moves it), so a sweep of variants re-runs only
the layers that changed. ZigZag writes its logs and output folders in a temporary folder, at debug level.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch

from .._files import file_sha256
from ..errors import ModelError
from .onnx_graph import _MAC_OPS
from .provenance import figure
from .zigzag import (
    DEFAULT_ACT_BITS,
    SHIPPED,
    TOOL,
    Architecture,
    LayerJob,
    architecture,
    cache_folder,
    cached,
    digest,
    simulate_layer,
    store,
    zigzag_version,
)

__all__ = ["SHIPPED", "TOOL", "Architecture", "add_simulations", "architecture", "simulate", "zigzag_version"]
SIMULATED_OPS = ("Conv", "Gemm", "MatMul")
PJ = 1e-12


def add_simulations(record: dict[str, Any], model, designs: list[Architecture], *, partial: bool = False) -> None:
    """``record["simulated"]``: ``model`` (a loaded model or an ``.onnx`` path) on every design, each with its own
    provenance (tool, version, design)."""
    record["simulated"] = {design.name: simulate(model, design, partial=partial) for design in designs}
    record["provenance"]["simulated"] = figure("simulated", "; ".join(
        entry["provenance"]["by"] for entry in record["simulated"].values()))


def layer_precisions(model) -> tuple[dict[str, int], dict[str, int]]:
    """Weight and input activation bits per layer name of a :class:`~wattless.io.WattlessModel` (whole bits: a
    codebook of 2^k values is k-bit codes)."""
    from ..packed import layer_weight_bits
    from .profile import layer_activation_bits

    weights = {name: math.ceil(bits) for name, bits in layer_weight_bits(model.module).items()}
    acts = {name: math.ceil(bits) for name, bits in layer_activation_bits(model.module).items()}
    return weights, acts


def simulate(model, arch: Architecture, *, partial: bool = False, cache_dir: Path | None = None) -> dict[str, Any]:
    """Energy (J per sample) and latency (cycles; seconds with a clock) of ``model`` on ``arch``, total and per layer.

    ``model`` is a :class:`~wattless.io.WattlessModel` (weight bits from its packed form, activation bits from its
    attached quantizers) or the path of an ``.onnx`` file (bits from its graph: int8 QDQ and integer ops at 8, float
    tensors at their width; an fp32 export of a packed model is fp32 to the simulator: simulate its ``.wlz``).

    Raises:
        ModelError: a layer ZigZag cannot parse (without ``partial``: with it, the record names what was left out
            and its share of the MACs).
        ConfigError: ZigZag missing, or a design it rejects (its message and the file).
    """
    version = zigzag_version()
    cache = cache_folder(cache_dir)
    from_file = isinstance(model, str | os.PathLike)
    if from_file:
        whole_key = "onnx-" + digest({"file": file_sha256(model), "arch": arch.digest, "zigzag": version,
                                      "partial": partial})
    else:
        weight_bits, act_bits = layer_precisions(model)
        whole_key = _model_key(model, weight_bits, act_bits, arch, version, partial)
    known = cached(cache, whole_key)  # the same structure and precisions on the same design: no export at all
    if known is not None:
        return _with_clock(known, arch)
    from .simulate_onnx import onnx_layers

    jobs = onnx_layers(Path(model)) if from_file else _module_layers(model, weight_bits, act_bits)
    with tempfile.TemporaryDirectory(prefix="wattless-zigzag-") as tmp:
        summary = _simulate_layers(jobs, arch, version, cache, Path(tmp), partial)
    return _with_clock(store(cache, whole_key, summary), arch)


_EXPORTED: OrderedDict[str, list[LayerJob]] = OrderedDict()
"""The layers of the last few models exported here (one export serves every design, and the variants of a study
that differ only in precision)."""


def _module_layers(model, weight_bits: dict[str, int], act_bits: dict[str, int]) -> list[LayerJob]:
    """The layers of a loaded model: exported (dense) to ONNX, each MAC node named after its PyTorch layer and given
    the model's own precisions."""
    import onnx

    from ..deploy import export_onnx
    from ..io import deployable_module
    from .simulate_onnx import onnx_layers

    key = digest({"modules": repr(model.module), "input": list(model.input_shape)})
    if key not in _EXPORTED:
        with tempfile.TemporaryDirectory(prefix="wattless-zigzag-") as tmp:
            whole = Path(tmp) / "model.onnx"
            # the graph's structure is what ZigZag reads: no numeric check against PyTorch (and no failure when a
            # fake-quantized activation rounds the other way in ONNX Runtime)
            module = deployable_module(model.module).eval()
            export_onnx(module, model.input_shape, whole, check=False)
            graph = onnx.load(str(whole))
        owners = _weight_owners(graph, module)
        nodes = [node for node in graph.graph.node if node.op_type in _MAC_OPS]
        _EXPORTED[key] = [job._replace(name=_module_name(node, owners),
                                       weighted=any(name in owners for name in node.input[1:]))
                          for job, node in zip(onnx_layers(graph), nodes, strict=True)]
        while len(_EXPORTED) > 4:
            _EXPORTED.popitem(last=False)
    jobs = []
    for job in _EXPORTED[key]:
        act = act_bits.get(job.name, DEFAULT_ACT_BITS)
        # a product of two activations (attention's scores) has no weight: both operands are activations
        jobs.append(job._replace(wanted=(weight_bits.get(job.name, 32) if job.weighted else act, act)))
    return jobs


def _simulate_layers(jobs: list[LayerJob], arch: Architecture, version: str, cache: Path, tmp: Path,
                     partial: bool) -> dict[str, Any]:
    layers, skipped, warnings = [], [], []
    for job in jobs:
        try:
            if job.build is None:
                raise ModelError(f"ZigZag cannot simulate node {job.name} ({job.op}): it parses "
                                 f"{', '.join(SIMULATED_OPS)} layers only")
            bits, result = simulate_layer(job.build, job.wanted, arch, version, cache, tmp)
        except ModelError as exc:
            if not partial:
                raise
            skipped.append({"name": job.name, "op": job.op, "macs": job.macs, "reason": str(exc)})
            continue
        layer = {"name": job.name, "op": job.op, **bits, **result, "macs": job.macs}
        if (bits["weight_size"], bits["act_size"]) != job.wanted:
            layer["warning"] = (f"{arch.name} cannot hold {job.wanted[0]}-bit weights and {job.wanted[1]}-bit "
                                f"activations; simulated at {bits['weight_size']} and {bits['act_size']} bits")
            warnings.append(f"{job.name}: {layer['warning']}")
        layers.append(layer)
    if not layers:
        raise ModelError(f"ZigZag could simulate no layer of this model on {arch.name}: "
                         f"{skipped[0]['reason'] if skipped else 'it has no Conv, Gemm or MatMul'}")
    return _summary(layers, skipped, arch, version, warnings)


def _model_key(model, weight_bits: dict[str, int], act_bits: dict[str, int], arch: Architecture, version: str,
               partial: bool) -> str:
    """The model's layer structure (its module tree as PyTorch prints it: types, shapes, strides; not the weight
    values, which ZigZag does not read), input shape and precisions, the design and ZigZag's version."""
    return "model-" + digest({"modules": repr(model.module), "input": list(model.input_shape),
                               "weights": weight_bits, "acts": act_bits, "arch": arch.digest, "zigzag": version,
                               "partial": partial})


def _with_clock(summary: dict[str, Any], arch: Architecture) -> dict[str, Any]:
    """The summary with latency in seconds when the design's clock is known (the cache holds cycles only)."""
    if not arch.clock_mhz:
        return summary
    return {**summary, "latency_s": summary["latency_cycles"] / (arch.clock_mhz * 1e6), "clock_mhz": arch.clock_mhz}


def _weight_owners(graph, module: torch.nn.Module) -> dict[str, str]:
    """Constant name -> the layer of ``module`` (the exported, dense one) whose weight it holds: by name
    (``features.0.weight``), else by value (a Linear on 3-D inputs exports as MatMul with its weight transposed under
    a generated name)."""
    import numpy as np
    from onnx import numpy_helper

    layers = {}
    for name, layer in module.named_modules():
        weight = getattr(layer, "weight", None)
        if isinstance(weight, torch.Tensor) and weight.dim() >= 2:
            layers[name] = weight.detach().float().numpy()
    owners = {}
    for init in graph.graph.initializer:
        if init.name.endswith(".weight") and init.name.removesuffix(".weight") in layers:
            owners[init.name] = init.name.removesuffix(".weight")
            continue
        value = numpy_helper.to_array(init)
        for name, weight in layers.items():
            if value.size == weight.size and value.ndim == 2 and weight.ndim == 2 and (
                    (value.shape == weight.T.shape and np.array_equal(value, weight.T))
                    or (value.shape == weight.shape and np.array_equal(value, weight))):
                owners[init.name] = name
                break
    return owners


def _module_name(node, owners: dict[str, str]) -> str:
    """The PyTorch layer an exported node comes from (through its weight constant), else the node's own name."""
    weight = next((owners[name] for name in node.input[1:] if name in owners), None)
    return weight or node.name or node.op_type


def _summary(layers: list[dict[str, Any]], skipped: list[dict[str, Any]], arch: Architecture, version: str,
             warnings: list[str]) -> dict[str, Any]:
    energy_pj = sum(layer["energy_pj"] for layer in layers)
    cycles = sum(layer["latency_cycles"] for layer in layers)
    by = f"{TOOL} {version} on {arch.name}, layer by layer, batch 1, mapping searched for latency"
    summary = {"tool": TOOL, "version": version, "architecture": arch.name, "hardware": str(arch.hardware),
               "mapping": str(arch.mapping), "energy_j_per_sample": energy_pj * PJ,
               "latency_cycles": cycles, "layers": layers, "sparsity_modelled": False,
               "note": "ZigZag prices every weight, pruned or not, and a MAC at the array's energy whatever its bits",
               "provenance": figure("simulated", by)}
    if warnings:
        summary["warnings"] = warnings
    if skipped:
        simulated, left = sum(layer["macs"] for layer in layers), sum(layer["macs"] for layer in skipped)
        summary.update(left_out=skipped, simulated_macs=simulated, left_out_macs=left,
                       left_out_share=left / (simulated + left) if simulated + left else 0.0)
        summary["note"] += (f"; {len(skipped)} layer(s) ZigZag could not parse are left out, "
                            f"{summary['left_out_share']:.1%} of the MACs")
    return summary
