"""A :class:`~wattless.io.WattlessModel` to one ONNX file: fp32, static QDQ int8 or dynamic int8, with the
model's metadata (architecture, data set, recipe) in the file so measuring it needs nothing else."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..data import Dataset
from ..errors import ConfigError
from ..io import WattlessModel, deployable_module, fp32_state_dict_bytes
from .dynamic import quantize_dynamic_int8
from .int8 import CALIBRATION_METHODS, quantize_int8
from .onnx import export_onnx

INT8_MODES = ("static", "dynamic")
CALIBRATION_SAMPLES = 1024
"""Training rows that calibrate static int8 activation ranges."""


def int8_description(mode: str, calibration: str) -> dict[str, Any]:
    """The recipe entry of an int8 deployment as stored in the ONNX file's metadata."""
    config = ({"calibration": calibration, "per_channel": True, "format": "QDQ"} if mode == "static"
              else {"mode": "dynamic", "per_channel": True, "ops": ["MatMul", "Gemm"]})
    return {"technique": "quantize.int8", "config": {**config, "engine": "onnxruntime"}}


def check_int8_options(mode: str, calibration: str) -> None:
    if mode not in INT8_MODES:
        raise ConfigError(f"int8 mode {str(mode)[:40]!r} unknown; use one of {', '.join(INT8_MODES)}")
    if calibration not in CALIBRATION_METHODS:
        raise ConfigError(f"calibration {str(calibration)[:40]!r} unknown; use one of {', '.join(CALIBRATION_METHODS)}")


def export_model(model: WattlessModel, path: str | Path, *, int8: bool = False, mode: str = "static",
                 calibration: str = "minmax", data: Dataset | None = None) -> Path:
    """Write ``model`` as ONNX: fp32, or int8 (static QDQ calibrated on ``data``'s training split, or dynamic:
    MatMul/Gemm weights int8, activations quantized per batch at run time, no calibration data)."""
    path = Path(path)
    if path.suffix != ".onnx":
        raise ConfigError(f"ONNX output must end in .onnx, got {str(path)!r}")
    check_int8_options(mode, calibration)
    if int8 and mode == "static" and data is None:
        raise ConfigError("static int8 export needs calibration data; pass --dataset NAME (or --int8-mode dynamic)")
    module = deployable_module(model.module)
    meta = {**model.meta, "size_bytes_fp32": fp32_state_dict_bytes(model)}
    if int8:
        meta["recipe"] = [*meta.get("recipe", []), int8_description(mode, calibration)]
    metadata = {"wattless": json.dumps(meta, sort_keys=True)}
    if not int8:
        return export_onnx(module, model.input_shape, path, metadata=metadata)
    tmp_fp32 = path.with_name(f".{path.name}.fp32.tmp.onnx")
    try:
        export_onnx(module, model.input_shape, tmp_fp32, metadata=metadata)
        if mode == "dynamic":
            return quantize_dynamic_int8(tmp_fp32, path)
        return quantize_int8(tmp_fp32, path, data.X_train[:CALIBRATION_SAMPLES], method=calibration)
    finally:
        tmp_fp32.unlink(missing_ok=True)
