"""Run an exported ONNX model on the CPU with ONNX Runtime, in batches, with a fixed thread count."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnxruntime as ort
from onnxruntime.capi import onnxruntime_pybind11_state as ort_errors

from ..errors import ArtifactError, ConfigError, DataError
from ._io import check_finite_weights, check_sample_shape, existing_file, first_line, load_onnx_model, metadata_props

# ORT's exceptions derive from Exception directly; these are the ones a bad file or bad input raise.
_ORT_LOAD_ERRORS = (
    ort_errors.Fail,
    ort_errors.InvalidArgument,
    ort_errors.InvalidGraph,
    ort_errors.InvalidProtobuf,
    ort_errors.NoSuchFile,
    ort_errors.NotImplemented,
    ort_errors.RuntimeException,
)
_ORT_RUN_ERRORS = (ort_errors.Fail, ort_errors.InvalidArgument, ort_errors.RuntimeException)


class OnnxModel:
    """An ONNX model in an ONNX Runtime CPU session, for batched float32 prediction.

    The session runs operators one after another (inter-op threads 1) with ``threads`` intra-op
    threads and every graph optimization on, so latency timings state their thread count honestly.

    Attributes:
        input_name: name of the graph's single input.
        input_shape: shape of one sample (batch dimension left out); None marks a symbolic dimension.
        metadata: the file's ``metadata_props`` (e.g. ``{"precision": "int8"}``).

    Example:
        >>> model = OnnxModel("model.onnx", threads=1)  # doctest: +SKIP
        >>> logits = model.predict(X_test, batch_size=256)  # doctest: +SKIP
    """

    def __init__(self, path: str | os.PathLike, threads: int = 1):
        if threads < 1:
            raise ConfigError(f"threads must be at least 1; got {threads}")
        self.path = existing_file(path)
        self.threads = threads
        try:
            self.session = ort.InferenceSession(
                str(self.path), _session_options(threads), providers=["CPUExecutionProvider"]
            )
        except _ORT_LOAD_ERRORS as error:
            raise ArtifactError(f"{self.path} is not a loadable ONNX model ({first_line(error)})") from None
        check_finite_weights(self.path)  # after ONNX Runtime has checked where any external data lies
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            names = [value.name for value in inputs]
            raise ArtifactError(
                f"{self.path} has inputs {names}; wattless handles models with exactly one input"
            )
        self.input_name: str = inputs[0].name
        self.input_shape: tuple[int | None, ...] = tuple(
            dim if isinstance(dim, int) else None for dim in inputs[0].shape[1:]
        )
        self.output_name: str = self.session.get_outputs()[0].name
        self.metadata: dict[str, str] = dict(self.session.get_modelmeta().custom_metadata_map)

    def predict(self, X: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Run ``X`` (n, *input_shape) in batches of at most ``batch_size``; float32 outputs (n, ...)."""
        if batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1; got {batch_size}")
        X = np.ascontiguousarray(X, dtype=np.float32)
        check_sample_shape(X, self.input_shape, self.path, "input")
        # An empty X still runs once, so the result has the right trailing shape.
        starts = range(0, len(X), batch_size) or [0]
        outputs = [self._run(X[start : start + batch_size]) for start in starts]
        return np.concatenate(outputs).astype(np.float32, copy=False)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        try:
            return self.session.run([self.output_name], {self.input_name: batch})[0]
        except _ORT_RUN_ERRORS as error:
            raise DataError(
                f"ONNX Runtime cannot run {self.path} on this input ({first_line(error)})"
            ) from None

    def __repr__(self) -> str:
        return f"OnnxModel({str(self.path)!r}, threads={self.threads})"


def read_onnx_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file, read without loading weights or creating a session."""
    return metadata_props(load_onnx_model(path, with_weights=False))


def onnx_session(path: str | os.PathLike, threads: int = 1) -> ort.InferenceSession:
    """An ONNX Runtime CPU session: ``threads`` intra-op threads, one inter-op, sequential, all graph
    optimizations.

    Raises:
        ArtifactError: the file is missing, or ONNX Runtime cannot load it.
    """
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"ONNX file not found: {path}; check the path")
    try:
        return ort.InferenceSession(str(path), _session_options(threads), providers=["CPUExecutionProvider"])
    except Exception as error:  # ONNX Runtime's errors share no base class more specific than Exception
        message = " ".join(str(error).split())
        raise ArtifactError(f"ONNX Runtime cannot load {path}: {message}; export the model again") from None


def _session_options(threads: int) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only: keep ORT's optimizer notes off the console
    return options


def predict_or_bug(path: str | os.PathLike, batch: np.ndarray, what: str) -> np.ndarray:
    """Outputs of a file wattless just wrote, on ``batch``; any failure is a wattless bug (RuntimeError).

    Args:
        what: how to name the file in the message, e.g. ``"the int8 ONNX model"``.
    """
    try:
        return OnnxModel(path).predict(batch)
    except Exception as error:
        raise RuntimeError(f"{what} does not run in ONNX Runtime: {first_line(error)}") from error
