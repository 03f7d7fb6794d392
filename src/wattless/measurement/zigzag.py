"""ZigZag (KU Leuven; ``pip install wattless[hw]``) on one layer at a time: accelerator designs (shipped or the
user's YAML), a width probe per design, ZigZag's run kept quiet in a temporary folder, and the on-disk cache of
results keyed by (layer structure, precisions, design files, ZigZag version).

ZigZag is a design-space exploration tool, not a library of layers: wattless cuts each layer out as a one-node ONNX
model (:mod:`wattless.measurement.simulate`) and hands it over here.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import json
import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, NamedTuple

from .._json import canonical_json
from ..errors import ConfigError, ModelError

TOOL = "ZigZag"
SHIPPED = {"edge_tpu_like": "edge_tpu_like", "tpu_like": "tpu_like", "eyeriss_like": "default",
           "ascend_like": "ascend_like", "tesla_npu_like": "tesla_npu_like", "meta_prototype": "meta_prototype_like"}
"""Architectures ZigZag ships (hardware YAML name -> the mapping YAML it ships for it)."""
DEFAULT_ACT_BITS = 32
"""Activations without a quantizer are fp32."""
CACHE_FORMAT = 3
"""The layout of cached results; part of every cache key, so a new layout never reads an old entry."""


class LayerJob(NamedTuple):
    """One layer to simulate: its name, op, MACs per sample, the (weight, activation) bits it has, and how to cut it
    out as a one-node ONNX model at given bits (``{"weight_size", "act_size", "output_size"}``); ``build`` is None
    for an op ZigZag cannot parse; ``weighted`` False for a product of two activations."""

    name: str
    op: str
    macs: int
    wanted: tuple[int, int]
    build: Callable[[dict[str, int]], Any] | None
    weighted: bool = True


def cache_folder(cache_dir: Path | None = None) -> Path:
    """Where results are kept: ``cache_dir``, else ``$WATTLESS_CACHE/zigzag`` (``~/.cache/wattless/zigzag``)."""
    return Path(cache_dir or Path(os.environ.get("WATTLESS_CACHE", Path.home() / ".cache" / "wattless")) / "zigzag")


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


def holds(bits: tuple[int, int], arch: Architecture, version: str, cache: Path, tmp: Path) -> bool:
    """Whether the design can hold weights and activations of these widths at all: a small layer probed once per
    (design, 8/16/32-bit width class) and cached, so real layers are not first tried at widths whose operands do not
    fit the design's registers (a failing mapping search costs seconds)."""
    classes = tuple(8 if b <= 8 else 16 if b <= 16 else 32 for b in bits)
    key = digest({"probe": classes, "arch": arch.digest, "zigzag": version})
    known = cached(cache, key)
    if known is None:
        try:
            run_layer(_probe_layer(*classes), arch, tmp)
            known = {"holds": True}
        except ModelError:
            known = {"holds": False}
        store(cache, key, known)
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


def simulate_layer(build: Callable[[dict[str, int]], Any], wanted: tuple[int, int], arch: Architecture,
                   version: str, cache: Path, tmp: Path) -> tuple[dict[str, int], dict[str, Any]]:
    """The one-node model ``build(bits)`` makes, at its (weight, activation) bits, else at the nearest narrower ones
    the design can hold (its registers may be 8 bits wide); the partial sums at twice the activations. Failures are
    cached too."""
    weight, act = wanted
    tries = dict.fromkeys([(weight, act), (weight, min(act, 16)), (weight, min(act, 8)), (min(weight, 16), min(act, 8)),
                           (min(weight, 8), min(act, 8))])
    held = [pair for pair in tries if holds(pair, arch, version, cache, tmp)]
    error = None
    for weight, act in held or list(tries)[-1:]:
        bits = {"weight_size": weight, "act_size": act, "output_size": 2 * act}
        single = build(bits)
        key = layer_key(single, arch, version)
        result = cached(cache, key)
        if result is None:
            try:
                result = run_layer(single, arch, tmp)
            except ModelError as exc:
                result = {"error": str(exc)}
            store(cache, key, result)
        if "error" not in result:
            return bits, result
        error = error or result["error"]
    raise ModelError(error)


def layer_key(single, arch: Architecture, version: str) -> str:
    """The layer's structure (op, attributes, shapes: not its weight values), the design and ZigZag's version."""
    return digest({"node": str(single.graph.node[0]).replace(single.graph.node[0].name, ""),
                    "shapes": [str(info.type) for info in [*single.graph.input, *single.graph.output]],
                    "weights": [list(init.dims) for init in single.graph.initializer],
                    "arch": arch.digest, "zigzag": version})


def digest(described: dict[str, Any]) -> str:
    """A cache key: the hash of ``described`` as canonical JSON, with the cache layout's version."""
    return hashlib.sha256(canonical_json({**described, "format": CACHE_FORMAT}).encode()).hexdigest()[:32]


def cached(cache: Path, key: str) -> dict[str, Any] | None:
    path = cache / f"{key}.json"
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None  # a damaged entry is simulated again


def store(cache: Path, key: str, result: dict[str, Any]) -> dict[str, Any]:
    with contextlib.suppress(OSError):  # a read-only cache only costs time
        cache.mkdir(parents=True, exist_ok=True)
        staging = cache / f".{key}.tmp"
        staging.write_text(json.dumps(result))
        os.replace(staging, cache / f"{key}.json")
    return result


def run_layer(single, arch: Architecture, tmp: Path) -> dict[str, Any]:
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
                opt="latency", loma_show_progress_bar=False)  # stated in every record's provenance
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
