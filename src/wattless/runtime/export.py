"""``wattless export MODEL.wlz --format c -o DIR``: the model as a C99 library that runs from its packed weights."""

from __future__ import annotations

import math
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._version import __version__
from ..errors import ConfigError
from ..io import WattlessModel, deployable_module
from ..models._inputs import sample_inputs, vocabulary
from . import lowerings  # noqa: F401  (registers the zoo blocks' lowerings)
from .emit import TILE, CWriter, c_float, describe_json, render
from .graph import lower
from .plan import fuse, integer_layers, place


def layer_bytes(module) -> int:
    """Bytes a layer's own weights take in memory as the model holds them (an upper bound of the C arrays)."""
    return sum(p.numel() * p.element_size() for p in module.parameters(recurse=False))

FILES = ("model.h", "model.c", "main.c", "README.md")
MAX_WEIGHT_BYTES = 32 * 2**20
"""The most weight data the export writes as C arrays: beyond it the C compiler takes minutes and gigabytes."""


@dataclass
class CExport:
    """What was written: the folder, the arena and weight sizes (bytes), and per layer its C weight form."""

    path: Path
    arena_bytes: int
    weights_bytes: int
    batch_arena_bytes: int = 0
    """The arena that lets ``wl_predict_batch`` run a tile of samples at once (``arena_bytes`` when it cannot)."""
    layers: list[dict[str, Any]] = field(default_factory=list)
    input_shape: tuple[int, ...] = ()
    output_size: int = 0


def generate(model: WattlessModel) -> tuple[dict[str, str], CExport]:
    """The C files of ``model`` (its packed weights kept as parametrizations) as text, and what they hold."""
    graph = lower(deployable_module(model.module), model.input_shape)
    modules = dict(model.module.named_modules())  # the layers with their packed weights
    epilogues = fuse(graph)
    plan = place(graph, integer_layers(graph, modules))
    plan.epilogues = epilogues
    writer = CWriter(graph, plan, modules)
    stored = sum(layer_bytes(module) for module in model.module.modules())
    if stored > MAX_WEIGHT_BYTES:
        raise ConfigError(f"the model holds {stored / 2**20:.0f} MB of weights; the native C export writes weights as "
                          f"C arrays and stops at {MAX_WEIGHT_BYTES // 2**20} MB (the C compiler would take minutes "
                          "and gigabytes): compress it first (quantize, prune, distill) or deploy it with ONNX Runtime")
    for position, op in enumerate(graph.ops):
        writer.emit(position, op)
    output_size = math.prod(graph.shapes[graph.output])
    batch_arena_bytes = writer.tile_arena_floats * 4 if writer.tiled else plan.arena_floats * 4
    context = {
        "title": f"{model.name} for {(model.meta.get('dataset') or {}).get('name', 'its data')}",
        "version": __version__, "source": (model.path.name if model.path else "a wattless model"),
        "model_name": model.name, "dataset": (model.meta.get("dataset") or {}).get("name", "unknown data"),
        "recipe": " -> ".join(step.get("technique", "?") for step in model.recipe),
        "input_size": math.prod(model.input_shape), "input_shape": list(model.input_shape),
        "layout": _layout(model.input_shape), "output_size": output_size,
        "output_meaning": _output_meaning(model, output_size), "classes": model.task == "classification",
        "arena_bytes": plan.arena_floats * 4, "weights_bytes": writer.weight_bytes,
        "kernels": sorted(writer.kernels, key=lambda k: (k.op, k.form, k.bits, k.sparse)),
        "ops": {op.kind for op in graph.ops}, "arrays": writer.arrays, "statements": writer.statements,
        "output_pointer": writer.pointer(graph.output), "layers": writer.layers,
        "tiled": writer.tiled, "tile": TILE, "tile_statements": writer.tile_statements,
        "tile_input_offset": writer.tile_input_offset, "batch_arena_bytes": batch_arena_bytes,
        "tile_output_pointer": writer.tile_pointer(graph.output) if writer.tiled else "0",
        **_preprocessing(model),
    }
    files = {name: render(f"{name}.j2", context) for name in FILES}
    return files, CExport(Path(), plan.arena_floats * 4, writer.weight_bytes, batch_arena_bytes, writer.layers,
                          tuple(model.input_shape), output_size)


def export_c(model: WattlessModel, out: str | Path, *, force: bool = False, check: bool = True) -> CExport:
    """Write the C library of ``model`` into the folder ``out``, whole or not at all (a temporary folder renamed at
    the end). With ``check`` and a C compiler on this machine, it is first compiled with warnings as errors and its
    outputs compared with PyTorch's on a few inputs; a compiler error keeps the sources for inspection."""
    out = Path(out)
    if out.exists() and not (force and out.is_dir()):
        raise ConfigError(f"{str(out)!r} already exists; choose another -o folder or pass --force"
                          if not out.exists() or out.is_dir() else f"{str(out)!r} is a file; the C export writes a "
                          "folder")
    if not out.parent.exists():
        raise ConfigError(f"folder {str(out.parent)!r} does not exist; create it first")
    files, result = generate(model)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    for name, text in files.items():
        (staging / name).write_text(text)
    try:
        if check:
            check_outputs(model, staging, result)
    except ConfigError:
        raise  # the sources stay in the staging folder the message names
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if out.exists():
        shutil.rmtree(out)
    staging.rename(out)
    result.path = out
    return result


CHECK_SAMPLES = 8
CHECK_TOLERANCE = 1e-3
"""Largest difference of the C outputs from PyTorch's, relative to the largest output, in the export's check (the
float paths differ by summation order only; activation quantizers may flip a rounding, so they get argmax only)."""


def check_outputs(model: WattlessModel, folder: Path, result: CExport) -> None:
    """Compile ``folder``'s library strictly and compare it with PyTorch on a few random inputs (skipped without a
    compiler); a mismatch is a wattless bug (RuntimeError)."""
    import numpy as np
    import torch

    from .build import STRICT_FLAGS, compile_c, find_compiler
    from .library import NativeRunner

    try:
        find_compiler()
    except ConfigError:
        return  # no compiler: nothing to check with; the native engine says what to install
    X = sample_inputs(CHECK_SAMPLES, model.input_shape, vocabulary(model.module))
    with tempfile.TemporaryDirectory() as tmp:
        built = compile_c([folder / "model.c"], Path(tmp) / "check.so", flags=("-O1", *STRICT_FLAGS), shared=True)
        outputs = [NativeRunner(built.path, result.input_shape, result.output_size, arena).predict(X)
                   for arena in {result.arena_bytes, result.batch_arena_bytes}]  # one at a time, and a tile
    with torch.no_grad():
        expected = deployable_module(model.module).eval()(torch.from_numpy(X)).reshape(CHECK_SAMPLES, -1).numpy()
    difference = max(float(np.abs(got - expected).max()) for got in outputs)
    if any(hasattr(m, "input_quant") for m in model.module.modules()):  # a flipped rounding moves one step
        ok = expected.shape[1] == 1 or all((got.argmax(1) == expected.argmax(1)).all() for got in outputs)
    else:
        ok = difference <= CHECK_TOLERANCE * max(float(np.abs(expected).max()), 1e-6)
    if not ok:
        raise RuntimeError(f"the C library of {model.name} computes other outputs than PyTorch (largest difference "
                           f"{difference:.3g}); a wattless bug, sources in {folder}")


def _layout(input_shape: tuple[int, ...]) -> str:
    if len(input_shape) == 3:
        return "channels, height, width"
    if len(input_shape) == 2:
        return "channels, time steps"
    return "features"


def _output_meaning(model: WattlessModel, size: int) -> str:
    if model.task == "regression":
        return "the predicted value, in the target's units"
    classes = (model.meta.get("dataset") or {}).get("classes")
    named = f": {', '.join(map(str, classes))}" if classes and len(classes) <= 20 else ""
    return f"one logit per class (the largest is the prediction{named})"


def _preprocessing(model: WattlessModel) -> dict[str, Any]:
    """``wl_preprocess``'s constants when the data set's preprocessing is a standardisation, else its JSON."""
    described = (model.meta.get("dataset") or {}).get("preprocessing") or {}
    base = {"preprocess": "", "preprocessing_json": describe_json(described) if described else "none recorded"}
    if described.get("kind") != "standardize":
        return base
    numel = math.prod(model.input_shape)
    mean, std = described.get("mean"), described.get("std")
    mean = mean if isinstance(mean, list) else [mean]
    std = std if isinstance(std, list) else [std]
    groups = len(mean)
    if len(std) != groups or numel % groups or not all(isinstance(v, int | float) for v in [*mean, *std]):
        return base
    scale = float(described.get("pixel_scale", 1.0))
    per = ("per channel" if len(model.input_shape) > 1 and groups == model.input_shape[0] and groups > 1
           else "per feature" if groups > 1 else "")
    text = f"(raw{' * ' + repr(scale) if scale != 1.0 else ''} - mean) / std{' ' + per if per else ''}"
    return {**base, "preprocess": text, "pre_mean": [c_float(v) for v in mean], "pre_std": [c_float(v) for v in std],
            "pre_inner": numel // groups, "pixel_scale": c_float(scale)}
