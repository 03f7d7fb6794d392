"""``measure``: one honest result record for a model file or an in-memory model.

Accuracy comes from running the very artifact (PyTorch for ``.wlz``, ONNX Runtime for ``.onnx``),
size from bytes of real files, latency from timing each engine, energy from a RAPL meter when the machine
has one, else from the labelled estimator.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.torch import save_file

from ..data import Dataset
from ..errors import ConfigError, DataError
from ..train import metrics_from_outputs, predict
from .energy import estimate_energy
from .env import collect_env
from .latency import time_onnx, time_torch
from .meters import measure_onnx_energy, measure_torch_energy
from .ops import count_onnx_macs, count_params
from .profile import layer_profile, micronet_counts

DEFAULT_BATCHES = (1, 256)
CALIBRATION_SAMPLES = 1024


def fp32_state_dict_bytes(model) -> int:
    """Size in bytes of the model's fp32 ``state_dict`` written as a ``.safetensors`` file."""
    from ..io import state_tensors

    tensors = {k: (v.float() if v.is_floating_point() else v) for k, v in state_tensors(model.module).items()}
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "fp32.safetensors")
        save_file(tensors, path)
        return os.path.getsize(path)


def layer_weight_bits(module) -> dict[str, float]:
    """Bits per weight of each layer's packed (quantized) weight, by layer name: the mean over rows where
    rows have their own widths. Layers not listed are fp32."""
    from torch.nn.utils import parametrize

    from ..packed import PackedWeight

    bits = {}
    for name, sub in module.named_modules():
        if parametrize.is_parametrized(sub, "weight") and isinstance(sub.parametrizations.weight[-1], PackedWeight):
            packed = sub.parametrizations.weight[-1]
            bits[name] = float(getattr(packed, "mean_bits", packed.bits))
    return bits


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


def _quality(outputs: np.ndarray, dataset: Dataset, split: str) -> dict[str, float]:
    _, y = dataset.split(split)
    metrics = metrics_from_outputs(outputs, y, dataset.task)
    metrics.pop("loss", None)
    return metrics


def _base_record(meta: dict[str, Any], dataset: Dataset, threads: int) -> dict[str, Any]:
    return {"model": meta.get("model", {}).get("name"), "dataset": dataset.name, "task": dataset.task,
            "recipe": meta.get("recipe", []), "seed": meta.get("seed"), "env": collect_env(threads)}


ENGINES = ("torch", "onnxruntime", "int8")
"""Engines a model can be timed on: PyTorch eager fp32, ONNX Runtime fp32, ONNX Runtime static int8."""


def check_engines(engines: Collection[str]) -> set[str]:
    chosen = set(engines)
    if not chosen or chosen - set(ENGINES):
        raise ConfigError(f"engines {sorted(chosen)} unknown; use one or more of {', '.join(ENGINES)}")
    return chosen


def measure_module(model, dataset: Dataset, *, file_path: str | Path | None = None,
                   batches: Sequence[int] = DEFAULT_BATCHES, threads: int = 1,
                   engines: Collection[str] = ENGINES, repeats: int = 50, split: str = "test") -> dict[str, Any]:
    """Measure a :class:`~wattless.io.WattlessModel` (fp32 PyTorch) on the chosen ``engines``.

    Args:
        file_path: the model's ``.wlz`` file; ``size_bytes`` is its size. Without it, the model is
            saved to a temporary file and that size is reported.
        engines: ``torch`` (eager fp32), ``onnxruntime`` (fp32 ONNX export) and/or ``int8`` (a static
            int8 export calibrated on the training split, timed only: its accuracy is measured by
            measuring the int8 file itself).
    """
    from ..deploy import export_onnx, quantize_int8
    from ..io import deployable_module, save

    engines = check_engines(engines)
    check_compatible(model.meta, model.input_shape, dataset)
    X, _ = dataset.split(split)
    module = deployable_module(model.module).eval()
    record = _base_record(model.meta, dataset, threads)
    record.update(_quality(predict(module, X), dataset, split))
    params, nonzero = count_params(module)
    profile = layer_profile(model.module, module, model.input_shape)
    latency = []
    with tempfile.TemporaryDirectory() as tmp:
        if file_path is None:
            file_path = os.path.join(tmp, "model.wlz")
            save(model, file_path)
        size = os.path.getsize(file_path)
        if "torch" in engines:
            latency += [time_torch(module, model.input_shape, batch=b, threads=threads, repeats=repeats)
                        | {"precision": "fp32"} for b in batches]
        if engines & {"onnxruntime", "int8"}:
            fp32_onnx = export_onnx(module, model.input_shape, os.path.join(tmp, "fp32.onnx"))
        if "onnxruntime" in engines:
            latency += [time_onnx(fp32_onnx, model.input_shape, batch=b, threads=threads, repeats=repeats)
                        | {"precision": "fp32"} for b in batches]
        if "int8" in engines:
            int8_onnx = quantize_int8(fp32_onnx, os.path.join(tmp, "int8.onnx"), dataset.X_train[:CALIBRATION_SAMPLES])
            latency += [time_onnx(int8_onnx, model.input_shape, batch=b, threads=threads, repeats=repeats)
                        | {"precision": "int8"} for b in batches]
    size_fp32 = fp32_state_dict_bytes(model)
    weight_bits = layer_weight_bits(model.module)
    record.update({
        "precision": precision_label(weight_bits), "weight_bits": weight_bits, "params": params,
        "nonzero_params": nonzero, "size_bytes": size, "size_bytes_fp32": size_fp32,
        "compression_ratio": size_fp32 / size, "macs": profile["macs"], "macs_per_layer": profile["layers"],
        "bops": profile["bops"], "micronet": profile["micronet"],
        "latency_ms": latency,
        # Weights stored at their bits cut memory traffic; layers without activation quantizers take fp32
        # inputs, so their arithmetic stays fp32.
        # Measured when a RAPL meter is available (the estimate then kept under energy_estimate).
        **measure_torch_energy(module, model.input_shape, profile["energy"], batch=min(batches, default=1),
                               threads=threads),
        "artifact": str(file_path) if Path(file_path).exists() else None,
    })
    return record


def measure_onnx(path: str | Path, dataset: Dataset, *, batches: Sequence[int] = DEFAULT_BATCHES,
                 threads: int = 1, engines: Collection[str] = ENGINES, repeats: int = 50,
                 split: str = "test") -> dict[str, Any]:
    """Measure an ``.onnx`` file by running it in ONNX Runtime (int8 or fp32, as stored)."""
    from ..deploy import OnnxModel

    if not check_engines(engines) & {"onnxruntime", "int8"}:
        raise ConfigError(f"{Path(path).name} is an ONNX file: it runs in ONNX Runtime, not in PyTorch; "
                          "use --engines onnxruntime")

    runtime = OnnxModel(path, threads=threads)
    meta = json.loads(runtime.metadata.get("wattless", "{}"))
    precision = runtime.metadata.get("precision", "fp32")
    input_shape = tuple(meta.get("model", {}).get("input_shape") or runtime.input_shape or dataset.input_shape)
    check_compatible(meta, input_shape, dataset)
    X, _ = dataset.split(split)
    record = _base_record(meta, dataset, threads)
    record.update(_quality(runtime.predict(X), dataset, split))
    ops = count_onnx_macs(path)
    params = sum(layer["params"] for layer in ops["layers"])
    bits = 8 if precision == "int8" else 32
    size = os.path.getsize(path)
    size_fp32 = meta.get("size_bytes_fp32")
    record.update({
        "precision": precision, "params": meta.get("params", params), "nonzero_params": meta.get("nonzero_params"),
        "size_bytes": size, "size_bytes_fp32": size_fp32,
        "compression_ratio": size_fp32 / size if size_fp32 else None, "macs": ops["total"],
        "macs_per_layer": ops["layers"], "bops": ops["total"] * bits * bits,
        "micronet": micronet_counts([{**layer, "nonzero": None, "weight_bits": bits, "act_bits": bits}
                                     for layer in ops["layers"]]),
        "latency_ms": [time_onnx(path, input_shape, batch=b, threads=threads, repeats=repeats)
                       | {"precision": precision} for b in batches],
        **measure_onnx_energy(path, input_shape, estimate_energy(ops["layers"], weight_bits=bits, act_bits=bits,
                                                                 float_ops=bits == 32),
                              batch=min(batches, default=1), threads=threads),
        "artifact": str(path),
    })
    return record
