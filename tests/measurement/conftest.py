"""Small seeded models with hand-countable MACs, and their fp32 and QDQ int8 ONNX exports."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from torch import nn

MLP_INPUT = (784,)
CONV_INPUT = (3, 16, 16)


def make_mlp() -> nn.Sequential:
    """784 -> 300 -> 10."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(784, 300), nn.ReLU(), nn.Linear(300, 10))


def make_conv_net() -> nn.Sequential:
    """(3, 16, 16) -> 10, with padding, stride, groups and dilation."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),                        # -> (8, 16, 16)
        nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2, padding=1, groups=4),   # -> (16, 8, 8)
        nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=2, dilation=2),          # -> (16, 8, 8)
        nn.Flatten(),
        nn.Linear(16 * 8 * 8, 10),
    )


class _RandomCalibration(CalibrationDataReader):
    def __init__(self, input_shape: tuple[int, ...], batches: int = 4):
        rng = np.random.default_rng(0)
        self._feeds = iter([{"input": rng.standard_normal((1, *input_shape), dtype=np.float32)}
                            for _ in range(batches)])

    def get_next(self):
        return next(self._feeds, None)


def export(model: nn.Module, input_shape: tuple[int, ...], path: Path, *, input_name: str = "input",
           dynamic_batch: bool = True) -> Path:
    """Export with the fast TorchScript exporter; the batch axis is dynamic unless told otherwise."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the legacy exporter is fine for tests
        torch.onnx.export(model.eval(), (torch.randn(2, *input_shape),), path, dynamo=False,
                          input_names=[input_name], output_names=["output"],
                          dynamic_axes={input_name: {0: "batch"}} if dynamic_batch else None)
    return path


@pytest.fixture
def mlp() -> nn.Sequential:
    return make_mlp()


@pytest.fixture
def conv_net() -> nn.Sequential:
    return make_conv_net()


@pytest.fixture
def export_onnx():
    """The export function: ``export_onnx(model, input_shape, path, *, input_name, dynamic_batch)``."""
    return export


@pytest.fixture(scope="session")
def onnx_models(tmp_path_factory) -> dict[str, Path]:
    """fp32 and QDQ int8 exports of the MLP and the conv net: keys "mlp", "mlp-int8", "conv", "conv-int8"."""
    folder = tmp_path_factory.mktemp("onnx")
    paths = {}
    for name, model, input_shape in (("mlp", make_mlp(), MLP_INPUT), ("conv", make_conv_net(), CONV_INPUT)):
        paths[name] = export(model, input_shape, folder / f"{name}.onnx")
        paths[f"{name}-int8"] = folder / f"{name}-int8.onnx"
        quantize_static(paths[name], paths[f"{name}-int8"], _RandomCalibration(input_shape),
                        quant_format=QuantFormat.QDQ, activation_type=QuantType.QInt8,
                        weight_type=QuantType.QInt8)
    return paths


@pytest.fixture
def corrupt_onnx(tmp_path) -> Path:
    path = tmp_path / "corrupt.onnx"
    path.write_bytes(b"this is not an ONNX model\n" * 10)
    return path
