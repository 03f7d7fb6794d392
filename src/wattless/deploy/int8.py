"""Static int8 quantization of an fp32 ONNX file into QDQ form with ONNX Runtime's quantizer.

Weights are symmetric int8 (per output channel by default), activations asymmetric uint8: the U8S8
combination ONNX Runtime recommends for x86-64 CPUs
(https://onnxruntime.ai/docs/performance/model-optimizations/quantization.html).
"""

from __future__ import annotations

import contextlib
import io
import os
import platform
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

from ..errors import ConfigError, DataError
from ._io import (
    atomic_output,
    check_sample_shape,
    graph_input,
    load_onnx_model,
    metadata_props,
    write_onnx_model,
)
from .runtime import predict_or_bug

CALIBRATION_METHODS = {
    "minmax": CalibrationMethod.MinMax,
    "entropy": CalibrationMethod.Entropy,
    "percentile": CalibrationMethod.Percentile,
}
"""How activation ranges are chosen from calibration data, by name."""


def quantize_int8(
    fp32_path: str | os.PathLike,
    out_path: str | os.PathLike,
    calibration: np.ndarray,
    *,
    per_channel: bool = True,
    method: str = "minmax",
    batch_size: int = 64,
    reduce_range: bool | None = None,
) -> Path:
    """Write a static int8 QDQ copy of an fp32 ONNX model, calibrated on ``calibration``.

    The fp32 file's ``metadata_props`` are kept, with ``precision=int8`` and the quantization
    settings added. The write is atomic and every intermediate file lives in a removed temp folder.

    Args:
        fp32_path: the fp32 .onnx file, e.g. from :func:`export_onnx`.
        out_path: the int8 .onnx file to write.
        calibration: representative inputs of shape (n, *input_shape); a few hundred samples suffice.
            Batches are equal, so the last ``n % batch_size`` samples are left out when n > batch_size.
        per_channel: one weight scale per output channel (better accuracy) instead of one per tensor.
        method: activation range calibration, one of ``minmax``, ``entropy``, ``percentile``.
        batch_size: calibration samples fed to ONNX Runtime at a time.
        reduce_range: 7-bit weights, which avoid the 16-bit saturation of u8s8 kernels on x86-64 CPUs
            without VNNI; None chooses by this machine's CPU (:func:`cpu_lacks_vnni`).

    Raises:
        ConfigError: unknown ``method`` or ``batch_size`` below 1.
        ArtifactError: ``fp32_path`` is missing or not an ONNX model.
        DataError: ``calibration`` is empty, not finite, or its samples do not fit the model input.

    Example:
        >>> quantize_int8("mlp.onnx", "mlp.int8.onnx", X_train[:512], method="percentile")  # doctest: +SKIP
        PosixPath('mlp.int8.onnx')
    """
    if method not in CALIBRATION_METHODS:
        raise ConfigError(
            f"unknown calibration method {method!r}; choose one of {', '.join(CALIBRATION_METHODS)}"
        )
    if batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1; got {batch_size}")
    fp32_model = load_onnx_model(fp32_path)
    input_name, sample_shape = graph_input(fp32_model, fp32_path)
    samples = _checked_calibration(calibration, sample_shape, fp32_path)
    if reduce_range is None:
        reduce_range = cpu_lacks_vnni()

    with tempfile.TemporaryDirectory(prefix="wattless-int8-") as work_dir:
        # Pre-processing (shape inference + basic graph optimization) is what ORT asks for before
        # quantizing; it works on the graphs export_onnx writes, and it silences ORT's warning.
        prepared_path, quantized_path = Path(work_dir, "prepared.onnx"), Path(work_dir, "int8.onnx")
        quant_pre_process(fp32_model, prepared_path)
        reader = _BatchReader(input_name, samples, batch_size)
        # The entropy and percentile calibrators print progress lines to stdout.
        with contextlib.redirect_stdout(io.StringIO()):
            quantize_static(
                prepared_path,
                quantized_path,
                reader,
                quant_format=QuantFormat.QDQ,
                per_channel=per_channel,
                reduce_range=reduce_range,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=CALIBRATION_METHODS[method],
            )
        int8_model = onnx.load(quantized_path)

    settings = {
        "precision": "int8",
        "int8_calibration": method,
        "int8_calibration_samples": str(reader.n_samples),
        "int8_per_channel": str(per_channel).lower(),
        "int8_reduce_range": str(reduce_range).lower(),
    }
    # Replace, not merge: drops the markers ORT's quantizer adds (onnx.infer, onnx.quant.pre_process).
    onnx.helper.set_model_props(int8_model, metadata_props(fp32_model) | settings)
    with atomic_output(out_path) as temp_path:
        write_onnx_model(int8_model, temp_path)
        _check_runs(temp_path, samples[:batch_size])
    return Path(out_path)


def cpu_lacks_vnni() -> bool:
    """True on x86-64 CPUs without VNNI, whose u8s8 int8 kernels can saturate 16-bit partial sums.

    Reads Linux's /proc/cpuinfo; where the flags cannot be read on x86-64 it answers True, since
    7-bit weights cost little accuracy while saturation can cost a lot.
    """
    if platform.machine().lower() not in {"x86_64", "amd64"}:
        return False
    try:
        cpu_flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return True
    return not cpu_flags & {"avx512_vnni", "avx_vnni"}


class _BatchReader(CalibrationDataReader):
    """Feeds calibration samples to ORT's calibrator in equal batches of at most ``batch_size``.

    ORT's entropy and percentile calibrators stack the batches' outputs into one array, so a shorter
    last batch breaks them: the remainder (fewer than ``batch_size`` samples) is left out.
    """

    def __init__(self, input_name: str, samples: np.ndarray, batch_size: int):
        size = min(batch_size, len(samples))
        self.n_samples = len(samples) - len(samples) % size
        starts = range(0, self.n_samples, size)
        self._batches = iter([{input_name: samples[start : start + size]} for start in starts])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)


def _checked_calibration(calibration: np.ndarray, sample_shape: tuple, path: str | os.PathLike) -> np.ndarray:
    try:
        samples = np.ascontiguousarray(calibration, dtype=np.float32)
    except (TypeError, ValueError) as error:
        raise DataError(
            f"calibration data must be a numeric array; got {type(calibration).__name__} ({error})"
        ) from None
    if samples.ndim == 0 or len(samples) == 0:
        raise DataError(
            f"calibration data holds no samples (shape {samples.shape}); pass a few hundred inputs"
        )
    check_sample_shape(samples, sample_shape, path, "calibration data")
    if not np.isfinite(samples).all():
        raise DataError("calibration data contains NaN or infinite values; clean or drop those samples")
    return samples


def _check_runs(path: Path, batch: np.ndarray) -> None:
    """Run the quantized model once; a crash or non-finite output is a bug, not a user error."""
    outputs = predict_or_bug(path, batch, "the int8 ONNX model")
    if not np.isfinite(outputs).all():
        raise RuntimeError("the int8 ONNX model produces NaN or infinite outputs; this is a wattless bug")
