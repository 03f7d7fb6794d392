"""Export a PyTorch model to one self-contained fp32 ONNX file, checked against PyTorch in ONNX Runtime."""

from __future__ import annotations

import contextlib
import io
import logging
import numbers
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from ..errors import ConfigError, DataError, ModelError
from ..io import deployable_module
from ..models._inputs import sample_inputs, vocabulary
from ._io import atomic_output, first_line, set_metadata_props, write_onnx_model
from .runtime import predict_or_bug

CHECK_RTOL, CHECK_ATOL = 1e-4, 1e-5
"""Tolerances of the ONNX Runtime vs PyTorch output check."""
_TRACE_BATCH, _CHECK_BATCH = 3, 2
"""Batch sizes of the traced sample and of the check: different, so the check also proves a dynamic batch."""


def export_onnx(
    model: nn.Module,
    input_shape: tuple[int, ...],
    path: str | os.PathLike,
    *,
    metadata: dict[str, str] | None = None,
    opset: int | None = None,
    check: bool = True,
) -> Path:
    """Write ``model`` as an fp32 ONNX file with input "input" (dynamic batch) and output "output".

    The model is exported from an eval-mode CPU copy, so the caller's model (device, training flag,
    parametrizations) is left as it was; parametrizations are baked into plain effective weights.
    ``metadata`` goes into ``metadata_props`` next to ``{"precision": "fp32"}``. The write is atomic.

    Args:
        model: a module taking one float32 tensor of shape (batch, *input_shape) and returning one tensor.
        input_shape: shape of one sample, batch dimension left out, e.g. ``(1, 28, 28)``.
        path: the .onnx file to write.
        metadata: string key/value pairs to store in the file.
        opset: ONNX opset version; the exporter's default when None.
        check: run the file in ONNX Runtime and compare with PyTorch (rtol 1e-4, atol 1e-5).

    Raises:
        ConfigError: ``input_shape`` is not a tuple of positive ints.
        DataError: the model cannot run on inputs of ``input_shape``.
        ModelError: the model does not return a single tensor.
        RuntimeError: the exported graph disagrees with PyTorch (a bug, not a user error).

    Example:
        >>> export_onnx(mlp, (784,), "mlp.onnx", metadata={"dataset": "mnist"})  # doctest: +SKIP
        PosixPath('mlp.onnx')
    """
    input_shape = _checked_input_shape(input_shape)
    frozen = _eval_cpu_copy_without_parametrizations(model)
    vocab = vocabulary(frozen)
    trace_sample = torch.from_numpy(sample_inputs(_TRACE_BATCH, input_shape, vocab, seed=0))
    check_sample = torch.from_numpy(sample_inputs(_CHECK_BATCH, input_shape, vocab, seed=1))
    expected = _forward(frozen, check_sample, input_shape)

    onnx_model = _to_onnx(frozen, trace_sample, opset)
    _strip_debug_info(onnx_model)
    set_metadata_props(onnx_model, {"precision": "fp32", **(metadata or {})})
    with atomic_output(path) as temp_path:
        write_onnx_model(onnx_model, temp_path)
        if check:
            _check_against_torch(temp_path, check_sample.numpy(), expected)
    return Path(path)


def _strip_debug_info(onnx_model: onnx.ModelProto) -> None:
    """Drop per-node debug metadata (the exporter's stack traces): bytes in the file that nothing runs."""
    for node in onnx_model.graph.node:
        del node.metadata_props[:]
        node.doc_string = ""


def _checked_input_shape(input_shape: tuple[int, ...]) -> tuple[int, ...]:
    shape = tuple(input_shape) if isinstance(input_shape, (tuple, list)) else ()
    if not shape or not all(isinstance(d, numbers.Integral) and d > 0 for d in shape):
        raise ConfigError(
            f"input_shape must be a tuple of positive ints, e.g. (1, 28, 28); got {input_shape!r}"
        )
    return tuple(int(d) for d in shape)


def _eval_cpu_copy_without_parametrizations(model: nn.Module) -> nn.Module:
    """An fp32 eval-mode CPU copy whose parametrized tensors are plain tensors of their effective values."""
    return deployable_module(model).cpu().float().eval()


def _forward(model: nn.Module, sample: torch.Tensor, input_shape: tuple[int, ...]) -> np.ndarray:
    try:
        with torch.no_grad():
            output = model(sample)
    except Exception as error:  # wrong input_shape is by far the most common cause
        raise DataError(
            f"the model cannot run on inputs of per-sample shape {input_shape} ({first_line(error)}); "
            "pass the input_shape the model expects"
        ) from None
    if not isinstance(output, torch.Tensor):
        raise ModelError(
            f"ONNX export needs a model returning one tensor; this one returns {type(output).__name__}"
        )
    return output.numpy()


def _to_onnx(model: nn.Module, sample: torch.Tensor, opset: int | None) -> onnx.ModelProto:
    """Trace ``model`` to an in-memory ONNX graph with the torch.export-based exporter, else TorchScript."""
    names = {"input_names": ["input"], "output_names": ["output"], "opset_version": opset, "verbose": False}
    try:
        with _quiet_exporter():
            # f=None keeps the program in memory: nothing is written, so no external .data file appears.
            program = torch.onnx.export(
                model, (sample,), None, dynamo=True, dynamic_shapes=({0: torch.export.Dim("batch")},), **names
            )
        return program.model_proto
    except Exception as error:
        # torch.export's graph capture fails on some models (data-dependent control flow, untraceable
        # Python); the TorchScript exporter still produces a correct graph, and the check below runs it.
        warnings.warn(
            f"torch.export-based ONNX export failed ({first_line(error)}); using the TorchScript exporter",
            stacklevel=3,
        )
    buffer = io.BytesIO()
    with _quiet_exporter():
        torch.onnx.export(
            model,
            (sample,),
            buffer,
            dynamo=False,
            dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
            **names,
        )
    return onnx.load_from_string(buffer.getvalue())


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Hide the exporters' progress lines, registry log messages and internal deprecation warnings."""
    torch_onnx_logger = logging.getLogger("torch.onnx")
    previous_level = torch_onnx_logger.level
    torch_onnx_logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            yield
    finally:
        torch_onnx_logger.setLevel(previous_level)


def _check_against_torch(path: Path, sample: np.ndarray, expected: np.ndarray) -> None:
    actual = predict_or_bug(path, sample, "the exported ONNX graph")
    if actual.shape != expected.shape or not np.allclose(actual, expected, rtol=CHECK_RTOL, atol=CHECK_ATOL):
        worst = np.max(np.abs(actual - expected)) if actual.shape == expected.shape else "n/a (shapes differ)"
        raise RuntimeError(
            f"ONNX Runtime output {actual.shape} disagrees with PyTorch {expected.shape} "
            f"(max abs difference {worst}; rtol {CHECK_RTOL}, atol {CHECK_ATOL}); this is a wattless bug"
        )
