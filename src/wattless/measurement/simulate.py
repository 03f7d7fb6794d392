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

import contextlib
import functools
import hashlib
import io
import json
import logging
import math
import os
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from .._json import canonical_json
from ..errors import ConfigError, ModelError
from .provenance import figure

TOOL = "ZigZag"
SHIPPED = {"edge_tpu_like": "edge_tpu_like", "tpu_like": "tpu_like", "eyeriss_like": "default",
           "ascend_like": "ascend_like", "tesla_npu_like": "tesla_npu_like", "meta_prototype": "meta_prototype_like"}
"""Architectures ZigZag ships (hardware YAML name -> the mapping YAML it ships for it)."""
SIMULATED_OPS = ("Conv", "Gemm", "MatMul")
DEFAULT_ACT_BITS = 32
PJ = 1e-12
NOT_FROM_ONNX = ("hardware simulation reads the precisions from a .wlz model; simulate the .wlz the ONNX file came "
                 "from")
CACHE_FORMAT = 2
"""The layout of cached results; part of every cache key, so a new layout never reads an old entry."""


@dataclass(frozen=True)
class Architecture:
    """An accelerator design: ZigZag hardware and mapping YAML files; ``clock_mhz`` when known."""

    name: str
    hardware: Path
    mapping: Path
    clock_mhz: float | None = None

    @functools.cached_property
    def digest(self) -> str:
        """What the cache keys on: the two files' contents (read once per design)."""
        return hashlib.sha256(self.hardware.read_bytes() + b"\0" + self.mapping.read_bytes()).hexdigest()[:16]


def zigzag_version() -> str:
    """The installed ZigZag's version, or one error naming the extra to install."""
    try:
        return metadata.version("zigzag-dse")
    except metadata.PackageNotFoundError:
        raise ConfigError("hardware simulation needs ZigZag; install it: pip install 'wattless[hw]' (zigzag-dse)") \
            from None


def architecture(spec: str, *, clock_mhz: float | None = None) -> Architecture:
    """A shipped design by name, or ``HARDWARE.yaml[:MAPPING.yaml]`` of the user's own (the shipped default mapping
    when none is given)."""
    zigzag_version()
    import zigzag

    inputs = Path(zigzag.__file__).parent / "inputs"
    if clock_mhz is not None and not (isinstance(clock_mhz, int | float) and clock_mhz > 0):
        raise ConfigError(f"--clock-mhz must be a positive number, got {clock_mhz!r}")
    if spec in SHIPPED:
        return Architecture(spec, inputs / "hardware" / f"{spec}.yaml", inputs / "mapping" / f"{SHIPPED[spec]}.yaml",
                            clock_mhz)
    hardware, _, mapping = spec.partition(":")
    if not hardware.endswith((".yaml", ".yml")):
        raise ConfigError(f"unknown architecture {spec!r}; use one of {', '.join(SHIPPED)} or "
                          "HARDWARE.yaml[:MAPPING.yaml]")
    paths = [Path(hardware), Path(mapping) if mapping else inputs / "mapping" / "default.yaml"]
    for path in paths:
        if not path.is_file():
            raise ConfigError(f"architecture file {str(path)!r} not found")
    _validate(paths[0])
    return Architecture(paths[0].stem, paths[0], paths[1], clock_mhz)


def _validate(hardware: Path) -> None:
    """ZigZag's own check of a design file: its message and the file when it rejects it."""
    from zigzag.stages.parser.accelerator_parser import AcceleratorParserStage

    try:
        with contextlib.redirect_stdout(io.StringIO()):
            AcceleratorParserStage.parse_accelerator(str(hardware))
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        raise ConfigError(f"ZigZag rejected the design {hardware}: {type(exc).__name__}: {first}") from None


def add_simulations(record: dict[str, Any], model, designs: list[Architecture], *, partial: bool = False) -> None:
    """``record["simulated"]``: ``model`` on every design, each with its own provenance (tool, version, design)."""
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

    Raises:
        ModelError: a layer ZigZag cannot parse (without ``partial``: with it, the record names what was left out
            and its share of the MACs).
        ConfigError: ZigZag missing, or a design it rejects (its message and the file).
    """
    version = zigzag_version()
    import onnx

    from ..deploy import export_onnx
    from ..io import deployable_module

    weight_bits, act_bits = layer_precisions(model)
    cache = Path(cache_dir or Path(os.environ.get("WATTLESS_CACHE", Path.home() / ".cache" / "wattless")) / "zigzag")
    whole_key = _model_key(model, weight_bits, act_bits, arch, version, partial)
    known = _cached(cache, whole_key)  # the same structure and precisions on the same design: no export at all
    if known is not None:
        return _with_clock(known, arch)
    layers, skipped, warnings = [], [], []
    with tempfile.TemporaryDirectory(prefix="wattless-zigzag-") as tmp:
        whole = Path(tmp) / "model.onnx"
        # the graph's structure is what ZigZag reads: no numeric check against PyTorch (and no failure when a
        # fake-quantized activation rounds the other way in ONNX Runtime)
        module = deployable_module(model.module).eval()
        export_onnx(module, model.input_shape, whole, check=False)
        graph = onnx.shape_inference.infer_shapes(onnx.load(str(whole)))
        owners = _weight_owners(graph, module)
        for node in graph.graph.node:
            if node.op_type not in SIMULATED_OPS:
                continue
            name = _module_name(node, owners)
            act = act_bits.get(name, DEFAULT_ACT_BITS)
            # a product of two activations (attention's scores) has no weight: both operands are activations
            wanted = (weight_bits.get(name, 32) if name in owners.values() else act, act)
            try:
                bits, result = _simulate_layer(graph, node, wanted, arch, version, cache, Path(tmp))
            except ModelError as exc:
                if not partial:
                    raise
                skipped.append({"name": name, "op": node.op_type, "reason": str(exc)})
                continue
            layer = {"name": name, "op": node.op_type, **bits, **result}
            if (bits["weight_size"], bits["act_size"]) != wanted:
                layer["warning"] = (f"{arch.name} cannot hold {wanted[0]}-bit weights and {wanted[1]}-bit "
                                    f"activations; simulated at {bits['weight_size']} and {bits['act_size']} bits")
                warnings.append(f"{name}: {layer['warning']}")
            layers.append(layer)
    return _with_clock(_store(cache, whole_key, _summary(layers, skipped, arch, version, warnings)), arch)


def _holds(bits: tuple[int, int], arch: Architecture, version: str, cache: Path, tmp: Path) -> bool:
    """Whether the design can hold weights and activations of these widths at all: a small layer probed once per
    (design, 8/16/32-bit width class) and cached, so real layers are not first tried at widths whose operands do not
    fit the design's registers (a failing mapping search costs seconds)."""
    classes = tuple(8 if b <= 8 else 16 if b <= 16 else 32 for b in bits)
    key = _digest({"probe": classes, "arch": arch.digest, "zigzag": version})
    known = _cached(cache, key)
    if known is None:
        try:
            _run(_probe_layer(*classes), arch, tmp)
            known = {"holds": True}
        except ModelError:
            known = {"holds": False}
        _store(cache, key, known)
    return bool(known["holds"])


def _probe_layer(weight: int, act: int):
    """A 16-in, 16-out Gemm at the given widths: the smallest layer every shipped design maps."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    node = helper.make_node("Gemm", ["x", "w"], ["y"], name="probe", transB=1, weight_size=weight, act_size=act,
                            output_size=2 * act)
    graph = helper.make_graph([node], "probe", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16])],
                              [numpy_helper.from_array(np.zeros((16, 16), dtype=np.float32), "w")])
    return helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])


def _model_key(model, weight_bits: dict[str, int], act_bits: dict[str, int], arch: Architecture, version: str,
               partial: bool) -> str:
    """The model's layer structure (its module tree as PyTorch prints it: types, shapes, strides; not the weight
    values, which ZigZag does not read), input shape and precisions, the design and ZigZag's version."""
    return "model-" + _digest({"modules": repr(model.module), "input": list(model.input_shape),
                               "weights": weight_bits, "acts": act_bits, "arch": arch.digest, "zigzag": version,
                               "partial": partial})


def _with_clock(summary: dict[str, Any], arch: Architecture) -> dict[str, Any]:
    """The summary with latency in seconds when the design's clock is known (the cache holds cycles only)."""
    if not arch.clock_mhz:
        return summary
    return {**summary, "latency_s": summary["latency_cycles"] / (arch.clock_mhz * 1e6), "clock_mhz": arch.clock_mhz}


def _simulate_layer(graph, node, wanted: tuple[int, int], arch: Architecture, version: str, cache: Path,
                    tmp: Path) -> tuple[dict[str, int], dict[str, Any]]:
    """The layer at its (weight, activation) bits, else at the nearest narrower ones the design can hold (its
    registers may be 8 bits wide); the partial sums at twice the activations. Failures are cached too."""
    weight, act = wanted
    tries = dict.fromkeys([(weight, act), (weight, min(act, 16)), (weight, min(act, 8)), (min(weight, 16), min(act, 8)),
                           (min(weight, 8), min(act, 8))])
    holds = [pair for pair in tries if _holds(pair, arch, version, cache, tmp)]
    error = None
    for weight, act in holds or list(tries)[-1:]:
        bits = {"weight_size": weight, "act_size": act, "output_size": 2 * act}
        single = _single_node(graph, node, bits)
        key = _cache_key(single, arch, version)
        result = _cached(cache, key)
        if result is None:
            try:
                result = _run(single, arch, tmp)
            except ModelError as exc:
                result = {"error": str(exc)}
            _store(cache, key, result)
        if "error" not in result:
            return bits, result
        error = error or result["error"]
    raise ModelError(error)


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


def _single_node(graph, node, bits: dict[str, int]):
    """A model of ``node`` alone (its inputs, initializers and shapes), with ZigZag's precision attributes set."""
    import onnx
    from onnx import helper

    initializers = {init.name: init for init in graph.graph.initializer}
    shapes = {info.name: info for info in [*graph.graph.value_info, *graph.graph.input, *graph.graph.output]}
    copy = onnx.NodeProto()
    copy.CopyFrom(node)
    for key, value in bits.items():
        copy.attribute.append(helper.make_attribute(key, int(value)))
    inputs = [_one_sample(shapes[name]) for name in node.input if name and name not in initializers]
    inits = [initializers[name] for name in node.input if name in initializers]
    return helper.make_model(helper.make_graph([copy], "layer", inputs, [_one_sample(shapes[node.output[0]])], inits),
                             opset_imports=graph.opset_import)


def _one_sample(info):
    """A value's type with every symbolic dimension (the batch) set to 1: ZigZag reads fixed sizes."""
    import onnx

    fixed = onnx.ValueInfoProto()
    fixed.CopyFrom(info)
    for dim in fixed.type.tensor_type.shape.dim:
        if not dim.HasField("dim_value"):
            dim.dim_value = 1
    return fixed


def _cache_key(single, arch: Architecture, version: str) -> str:
    """The layer's structure (op, attributes, shapes: not its weight values), the design and ZigZag's version."""
    return _digest({"node": str(single.graph.node[0]).replace(single.graph.node[0].name, ""),
                    "shapes": [str(info.type) for info in [*single.graph.input, *single.graph.output]],
                    "weights": [list(init.dims) for init in single.graph.initializer],
                    "arch": arch.digest, "zigzag": version})


def _digest(described: dict[str, Any]) -> str:
    """A cache key: the hash of ``described`` as canonical JSON, with the cache layout's version."""
    return hashlib.sha256(canonical_json({**described, "format": CACHE_FORMAT}).encode()).hexdigest()[:32]


def _cached(cache: Path, key: str) -> dict[str, Any] | None:
    path = cache / f"{key}.json"
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None  # a damaged entry is simulated again


def _store(cache: Path, key: str, result: dict[str, Any]) -> dict[str, Any]:
    with contextlib.suppress(OSError):  # a read-only cache only costs time
        cache.mkdir(parents=True, exist_ok=True)
        staging = cache / f".{key}.tmp"
        staging.write_text(json.dumps(result))
        os.replace(staging, cache / f"{key}.json")
    return result


def _run(single, arch: Architecture, tmp: Path) -> dict[str, Any]:
    """ZigZag on one layer: energy in pJ (compute and memory), latency in cycles."""
    import onnx
    from zigzag.api import get_hardware_performance_zigzag

    folder = Path(tempfile.mkdtemp(dir=tmp))
    path = folder / "layer.onnx"
    onnx.save(single, str(path))
    root, own = logging.getLogger(), logging.getLogger("zigzag")
    level, own_level, handlers = root.level, own.level, list(root.handlers)
    own.setLevel(logging.CRITICAL)  # its mapping warnings are ours to sum up (the record's warnings), not to print
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            energy, latency, cmes = get_hardware_performance_zigzag(
                str(path), str(arch.hardware), str(arch.mapping), dump_folder=str(folder / "out"),
                loma_show_progress_bar=False)
    except Exception as exc:  # the design was validated first: what fails here is this layer on this design
        node = single.graph.node[0]
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise ModelError(f"ZigZag cannot simulate node {node.name or '?'} ({node.op_type}) on {arch.name}: "
                         f"{type(exc).__name__}: {first}") from None
    finally:  # ZigZag calls logging.basicConfig(INFO): its handler goes, the root logger's level comes back
        for handler in [h for h in root.handlers if h not in handlers]:
            root.removeHandler(handler)
        root.setLevel(level)
        own.setLevel(own_level)
    cme = cmes[0][1][0][0]
    # per operand, the energy of each memory level from the array outwards: the last level is off-chip (DRAM)
    offchip = sum(float(levels[-1]) for levels in cme.mem_energy_breakdown.values() if len(levels) > 1)
    return {"energy_pj": float(energy), "compute_pj": float(cme.mac_energy),
            "onchip_pj": float(cme.mem_energy) - offchip, "offchip_pj": offchip,
            "latency_cycles": float(latency), "macs": int(getattr(cme.layer, "total_mac_count", 0) or 0)}


def _summary(layers: list[dict[str, Any]], skipped: list[dict[str, Any]], arch: Architecture, version: str,
             warnings: list[str]) -> dict[str, Any]:
    energy_pj = sum(layer["energy_pj"] for layer in layers)
    cycles = sum(layer["latency_cycles"] for layer in layers)
    by = f"{TOOL} {version} on {arch.name}, layer by layer, batch 1"
    summary = {"tool": TOOL, "version": version, "architecture": arch.name, "hardware": str(arch.hardware),
               "mapping": str(arch.mapping), "energy_j_per_sample": energy_pj * PJ,
               "latency_cycles": cycles, "layers": layers, "sparsity_modelled": False,
               "note": "ZigZag prices every weight, pruned or not, and a MAC at the array's energy whatever its bits",
               "provenance": figure("simulated", by)}
    if warnings:
        summary["warnings"] = warnings
    if skipped:
        total = sum(layer["macs"] for layer in layers)
        summary["left_out"] = skipped
        summary["note"] += f"; {len(skipped)} layer(s) ZigZag could not parse are left out"
        summary["simulated_macs"] = total
    return summary
