"""Reading, writing and checking ONNX files: atomic single-file writes, metadata, input shapes."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import onnx

from .._atomic import atomic_path
from ..errors import ArtifactError, ConfigError, DataError

SampleShape = tuple[int | None, ...]
"""Shape of one sample (batch dimension left out); None marks a symbolic dimension."""


@contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (creating its folder); move it onto ``path`` on success."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as temp_path:
        yield temp_path


def write_onnx_model(model: onnx.ModelProto, path: Path) -> None:
    """Save ``model`` as one self-contained file: weights inline, never a side ``.data`` file."""
    onnx.save_model(model, path, save_as_external_data=False)


def existing_file(path: str | os.PathLike) -> Path:
    """``path`` as a Path, or ArtifactError when no such file exists."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(
            f"ONNX model not found: {path}; check the path or create it with `wattless export`"
        )
    return path


def load_onnx_model(path: str | os.PathLike, *, with_weights: bool = True) -> onnx.ModelProto:
    """Parse an ONNX file, raising ArtifactError with one line when it is missing or not ONNX."""
    path = existing_file(path)
    try:
        model = onnx.load(path, load_external_data=with_weights)
    except Exception as error:  # any failure to parse the file means the file is bad
        raise ArtifactError(f"{path} is not a readable ONNX model ({first_line(error)})") from None
    if not model.HasField("graph"):
        raise ArtifactError(f"{path} is not an ONNX model (no graph found); re-export it")
    return model


_FLOAT_TYPES = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE, onnx.TensorProto.BFLOAT16)


def check_finite_weights(path: str | os.PathLike) -> None:
    """Refuse an ONNX file whose float weights (initializers and constants, in subgraphs too) hold NaN or infinite
    values: it would run and give a wrong answer (ArtifactError naming the first such weight)."""
    from onnx import numpy_helper

    graphs = [load_onnx_model(path).graph]
    while graphs:
        graph = graphs.pop()
        tensors = list(graph.initializer)
        for node in graph.node:
            for attribute in node.attribute:
                tensors.extend([attribute.t] if attribute.HasField("t") else attribute.tensors)
                graphs.extend([attribute.g] if attribute.HasField("g") else attribute.graphs)
        for tensor in tensors:
            if tensor.data_type in _FLOAT_TYPES and tensor.data_location != onnx.TensorProto.EXTERNAL:
                values = np.asarray(numpy_helper.to_array(tensor), dtype=np.float32)
                if not np.isfinite(values).all():
                    raise ArtifactError(f"{path}: weight {tensor.name[:80]!r} holds NaN or infinite values; "
                                        "retrain or re-export the model")


def set_metadata_props(model: onnx.ModelProto, metadata: Mapping[str, str]) -> None:
    """Add or overwrite string key/value pairs in the model's ``metadata_props``."""
    for key, value in metadata.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise ConfigError(f"ONNX metadata must map str to str; got {key!r}: {value!r}")
    merged = {prop.key: prop.value for prop in model.metadata_props} | dict(metadata)
    onnx.helper.set_model_props(model, merged)


def metadata_props(model: onnx.ModelProto) -> dict[str, str]:
    """The model's ``metadata_props`` as a dict."""
    return {prop.key: prop.value for prop in model.metadata_props}


def graph_input(model: onnx.ModelProto, path: str | os.PathLike) -> tuple[str, SampleShape]:
    """Name and per-sample shape of the model's single graph input."""
    initializers = {tensor.name for tensor in model.graph.initializer}
    inputs = [value for value in model.graph.input if value.name not in initializers]
    if len(inputs) != 1:
        names = [value.name for value in inputs]
        raise ArtifactError(f"{path} has inputs {names}; wattless handles models with exactly one input")
    dims = inputs[0].type.tensor_type.shape.dim[1:]
    return inputs[0].name, tuple(dim.dim_value if dim.HasField("dim_value") else None for dim in dims)


def check_sample_shape(
    samples: np.ndarray, expected: SampleShape, path: str | os.PathLike, what: str
) -> None:
    """Raise DataError naming both shapes when ``samples`` (n, *shape) do not fit the model input."""
    got = samples.shape[1:]
    fits = samples.ndim == len(expected) + 1 and all(
        e is None or e == g for e, g in zip(expected, got, strict=True)
    )
    if not fits:
        raise DataError(
            f"{what} of shape {format_shape(samples.shape)} has samples of shape {format_shape(got)}, but "
            f"{path} expects samples of shape {format_shape(expected)}; pass an array of shape "
            f"(n, {', '.join('?' if d is None else str(d) for d in expected)})"
        )


def format_shape(shape: tuple) -> str:
    """``(1, 28, 28)``-style text, with ``?`` for symbolic dimensions."""
    dims = ["?" if d is None else str(d) for d in shape]
    return f"({dims[0]},)" if len(dims) == 1 else f"({', '.join(dims)})"


def first_line(error: BaseException) -> str:
    """The first non-empty line of an error message, for one-line user errors."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__
