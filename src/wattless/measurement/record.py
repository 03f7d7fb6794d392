"""``measure``: one honest result record for a model file or an in-memory model.

Accuracy comes from running the very artifact (PyTorch for ``.wlz``, ONNX Runtime for ``.onnx``), size from
bytes of real files, latency from timing each registered engine, energy from a RAPL meter when the machine has
one, else from the labelled estimator; counts of an ONNX file come from its graph. Every figure names its
provenance (:mod:`.provenance`).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

from ..data import Dataset
from ..deploy import CALIBRATION_SAMPLES  # noqa: F401  (re-exported: the int8 calibration sample count)
from ..errors import DataError
from ..io import WattlessModel, deployable_module, fp32_state_dict_bytes, save
from ..packed import layer_weight_bits
from ..train import quality
from .energy import DEFAULT_BITS, estimate_energy
from .engines import OnnxRunner, TorchRunner, check_engines, get_engine
from .env import collect_env
from .latency import time_variants
from .meters import measure_runner_energy
from .onnx_ops import count_onnx_macs
from .ops import count_params
from .profile import layer_profile, micronet_counts
from .provenance import figure, make_record

DEFAULT_BATCHES = (1, 256)
ENGINES = ("torch", "onnxruntime", "int8")
"""Engines a model is timed on by default: PyTorch eager fp32, ONNX Runtime fp32, ONNX Runtime static int8 (the
native C runtime, ``native``, when asked for: it compiles the model first)."""
COUNTED = ("params", "nonzero_params", "macs", "bops", "micronet")


def precision_label(weight_bits: dict[str, float]) -> str:
    """``fp32``, ``w4`` (every quantized layer at 4 bits) or ``mixed``."""
    widths = set(weight_bits.values())
    if not widths:
        return "fp32"
    width = widths.pop()
    return f"w{width:g}" if not widths and width == int(width) else "mixed"


def check_compatible(meta: dict[str, Any], input_shape: Sequence[int], dataset: Dataset) -> None:
    """Refuse to measure a model on data of another shape or task, with a clear message."""
    if tuple(input_shape) != dataset.input_shape:
        raise DataError(f"the model expects samples of shape {list(input_shape)} but {dataset.name!r} has "
                        f"{list(dataset.input_shape)}; measure it on the data set it was trained on")
    task = meta.get("task")
    if task and task != dataset.task:
        raise DataError(f"the model is for {task} but {dataset.name!r} is a {dataset.task} data set")


def _base_record(meta: dict[str, Any], dataset: Dataset, threads: int) -> dict[str, Any]:
    return {"model": (meta.get("model") or {}).get("name"), "dataset": dataset.name, "task": dataset.task,
            "recipe": meta.get("recipe", []), "seed": meta.get("seed"), "env": collect_env(threads)}


def _quality_figures(record: dict[str, Any], runner, dataset: Dataset, split: str) -> None:
    metrics = quality(runner.predict(dataset.split(split)[0]), dataset, split)
    record.update(metrics)
    for key in metrics:
        record["provenance"][key] = figure("measured", f"{runner.engine} on the {split} split")


def _original_figures(meta: dict[str, Any], size: int, size_fp32: int | None, fp32_provenance: dict) -> dict:
    """Sizes against the fp32 file of the model the compression started from: from the file's metadata
    (declared), or the model's own fp32 file when it is not a compressed one."""
    original = meta.get("original")
    known = original.get("size_bytes_fp32") if isinstance(original, dict) else None
    if isinstance(known, int) and not isinstance(known, bool) and known > 0:
        value, provenance = known, figure("declared", "file metadata: the fp32 file of the original model")
    elif size_fp32:
        value, provenance = size_fp32, fp32_provenance
    else:
        return {}
    return {"size_bytes_original": value, "compression_ratio_original": value / size,
            "_provenance": {"size_bytes_original": provenance, "compression_ratio_original": provenance}}


def _timed(runners: dict[str, Any], batches: Sequence[int], threads: int, repeats: int) -> list[dict]:
    """Every engine at every batch timed in the same alternating rounds (``repeats`` runs each, split over the
    rounds), so that background load hits all of them alike: median and quartiles of the round medians (ms)."""
    return time_variants({"": runners}, batches=batches, threads=threads, repeats=repeats)[""]


def measure_module(model: WattlessModel, dataset: Dataset, *, file_path: str | Path | None = None,
                   batches: Sequence[int] = DEFAULT_BATCHES, threads: int = 1,
                   engines: Collection[str] = ENGINES, repeats: int = 50, split: str = "test",
                   designs: Sequence[Any] = (), simulate_partial: bool = False, timed: bool = True) -> dict[str, Any]:
    """Measure a :class:`~wattless.io.WattlessModel`: quality in PyTorch, latency on the chosen ``engines``, and
    energy and latency simulated on accelerator ``designs`` (:func:`~wattless.measurement.simulate.architecture`).

    Args:
        file_path: the model's ``.wlz`` file; ``size_bytes`` is its size. Without it, the model is
            saved to a temporary file and that size is reported.
        engines: registered engine names (``torch``, ``onnxruntime``, ``int8``: a static int8 export calibrated
            on the training split, timed only: its accuracy is measured by measuring the int8 file itself).
        timed: False leaves ``latency_ms`` empty for the caller to time several models together
            (:func:`~wattless.measurement.latency.time_models`); energy is still taken at the smallest batch.
    """
    chosen = check_engines(engines)
    check_compatible(model.meta, model.input_shape, dataset)
    module = deployable_module(model.module).eval()
    torch_runner = TorchRunner(module, model.input_shape)
    record = {**_base_record(model.meta, dataset, threads), "provenance": {}}
    _quality_figures(record, torch_runner, dataset, split)
    params, nonzero = count_params(module)
    profile = layer_profile(model.module, module, model.input_shape)
    with tempfile.TemporaryDirectory() as tmp:
        if file_path is None:
            file_path = os.path.join(tmp, "model.wlz")
            save(model, file_path, rebuildable=False)  # its packed size, even for a class no file could rebuild
        size = os.path.getsize(file_path)
        runners = {name: torch_runner if name == "torch" else get_engine(name).load(model, workdir=Path(tmp),
                                                                                    data=dataset)
                   for name in chosen if timed or name in ("torch", "native")}  # untimed: native for its footprint
        latency = _timed(runners, batches, threads, repeats) if batches and timed else []
        native = getattr(runners.get("native"), "footprint", None)
    size_fp32 = fp32_state_dict_bytes(model)
    weight_bits = layer_weight_bits(model.module)
    fp32_file = figure("measured", "safetensors file of the fp32 state_dict")
    original = _original_figures(model.meta, size, size_fp32, fp32_file)
    counted = figure("measured", "count of the PyTorch model's layers")
    energy = measure_runner_energy(torch_runner, profile["energy"], batch=min(batches, default=1), threads=threads)
    record["provenance"].update({
        "size_bytes": figure("measured", "file size"), "size_bytes_fp32": fp32_file,
        "compression_ratio": figure("measured", "ratio of file sizes"), **{key: counted for key in COUNTED},
        "latency_ms": figure("measured", "engines: " + ", ".join(chosen)),
        "energy_j_per_sample": figure(energy["energy_j_per_sample"].get("provenance", "estimated"),
                                      energy["energy_j_per_sample"]["method"]),
        **original.pop("_provenance", {})})
    record.update({
        "precision": precision_label(weight_bits), "weight_bits": weight_bits, "params": params,
        "nonzero_params": nonzero, "size_bytes": size, "size_bytes_fp32": size_fp32,
        "compression_ratio": size_fp32 / size, **original, "macs": profile["macs"],
        "macs_per_layer": profile["layers"], "bops": profile["bops"], "micronet": profile["micronet"],
        "latency_ms": latency, **energy, "artifact": str(file_path) if Path(file_path).exists() else None,
    })
    if native is not None:
        record["native"] = native
        record["provenance"]["native"] = figure("measured", "ELF sections of the built library, the export's arena")
    record = make_record(record)
    if designs:
        from .simulate import add_simulations

        add_simulations(record, model, designs, partial=simulate_partial)
    return record


def _graph_bits(ops: dict[str, Any], precision: str) -> tuple[dict[str, float], dict[str, float]]:
    """Weight and activation bits per counted node, from the graph when it says (else the file's precision); a
    node without a constant weight (attention's activation products) computes at its activations' width."""
    fallback = 8 if precision == "int8" else DEFAULT_BITS
    weight_bits, act_bits = {}, {}
    for layer in ops["layers"]:
        act = layer.get("act_bits") or fallback
        weight = layer["weight_bits"] if "weight_bits" in layer else fallback
        act_bits[layer["name"]] = float(act)
        weight_bits[layer["name"]] = float(weight if weight is not None else act)
    return weight_bits, act_bits


def measure_onnx(path: str | Path, dataset: Dataset, *, batches: Sequence[int] = DEFAULT_BATCHES,
                 threads: int = 1, engines: Collection[str] = ENGINES, repeats: int = 50,
                 split: str = "test", designs: Sequence[Any] = (), simulate_partial: bool = False,
                 timed: bool = True) -> dict[str, Any]:
    """Measure an ``.onnx`` file by running it in ONNX Runtime as stored (int8 or fp32), counting from its graph;
    on the accelerator ``designs``, simulated at the precisions its graph stores (``timed``: as in
    :func:`measure_module`)."""
    chosen = check_engines(engines)
    runner = get_engine("onnxruntime").load(path, workdir=Path(path).parent)
    if "torch" in chosen and len(chosen) == 1:
        get_engine("torch").load(path, workdir=Path(path).parent)  # refuses with the reason
    meta = runner.metadata
    input_shape = tuple((meta.get("model") or {}).get("input_shape") or runner.input_shape)
    if tuple(input_shape) != runner.input_shape:
        runner = OnnxRunner(path, input_shape)
    check_compatible(meta, input_shape, dataset)
    record = {**_base_record(meta, dataset, threads), "provenance": {}}
    _quality_figures(record, runner, dataset, split)
    ops = count_onnx_macs(path)
    weight_bits, act_bits = _graph_bits(ops, runner.precision)
    layers = [{**layer, "weight_bits": weight_bits[layer["name"]], "act_bits": act_bits[layer["name"]]}
              for layer in ops["layers"]]
    size = os.path.getsize(path)
    graph = figure("measured", "count of the ONNX graph")
    params = ops.get("params", sum(layer["params"] for layer in ops["layers"]))
    nonzero = ops.get("nonzero_params")
    if nonzero is None and isinstance(meta.get("nonzero_params"), int):
        nonzero = meta["nonzero_params"]
        record["provenance"]["nonzero_params"] = figure("declared", "file metadata")
    size_fp32 = meta.get("size_bytes_fp32")
    size_fp32 = size_fp32 if isinstance(size_fp32, int) and not isinstance(size_fp32, bool) and size_fp32 > 0 else None
    declared = figure("declared", "file metadata: the fp32 file of the exported model")
    original = _original_figures(meta, size, size_fp32, declared)
    estimate = estimate_energy(ops["layers"], weight_bits=weight_bits, act_bits=act_bits, float_ops=True)
    energy = measure_runner_energy(runner, estimate, batch=min(batches, default=1), threads=threads)
    record["provenance"] = {
        "size_bytes": figure("measured", "file size"), "params": graph, "macs": graph, "bops": graph,
        "micronet": graph, "nonzero_params": graph, **record["provenance"],
        "latency_ms": figure("measured", "engines: onnxruntime"),
        "energy_j_per_sample": figure(energy["energy_j_per_sample"].get("provenance", "estimated"),
                                      energy["energy_j_per_sample"]["method"]),
        **({"size_bytes_fp32": declared, "compression_ratio": declared} if size_fp32 else {}),
        **original.pop("_provenance", {})}
    record.update({
        "precision": runner.precision,
        "weight_bits": {layer["name"]: layer["weight_bits"] for layer in layers if layer["weight_numel"]},
        "params": params, "nonzero_params": nonzero, "size_bytes": size, "size_bytes_fp32": size_fp32,
        "compression_ratio": size_fp32 / size if size_fp32 else None, **original, "macs": ops["total"],
        "macs_per_layer": ops["layers"],
        "bops": round(sum(layer["macs"] * layer["weight_bits"] * layer["act_bits"] for layer in layers)),
        "micronet": micronet_counts([{**layer, "nonzero": layer.get("nonzero")} for layer in layers]),
        "latency_ms": _timed({"onnxruntime": runner}, batches, threads, repeats) if batches and timed else [],
        **energy, "artifact": str(path),
    })
    if designs:
        from .simulate import add_simulations

        add_simulations(record, Path(path), list(designs), partial=simulate_partial)
    return make_record(record)


def measure_file(path: str | Path, dataset: Dataset, *, trust_code: bool = False, designs: Sequence[Any] = (),
                 **options: Any) -> dict[str, Any]:
    """The record of a written model: an ``.onnx`` file in ONNX Runtime, a ``.wlz`` file through the engines; each
    also simulated on the accelerator ``designs``."""
    from ..io import load

    path = Path(path)
    if path.suffix == ".onnx":
        return measure_onnx(path, dataset, designs=designs, **options)
    return measure_module(load(path, trust_code=trust_code, keep_parametrizations=True), dataset, file_path=path,
                          designs=designs, **options)
