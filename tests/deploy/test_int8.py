"""quantize_int8: QDQ graph, per-channel scales, size, agreement with fp32, metadata, errors, no leftovers."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

import wattless.deploy.int8 as int8_module
from wattless.deploy import OnnxModel, export_onnx, quantize_int8, read_onnx_metadata
from wattless.errors import ArtifactError, ConfigError, DataError


@pytest.fixture(scope="module")
def mlp_int8_path(mlp_fp32_path, blobs, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("int8") / "mlp.int8.onnx"
    return quantize_int8(mlp_fp32_path, path, blobs["X_train"][:256])


def weight_scales(model: onnx.ModelProto, op_type: str) -> list[np.ndarray]:
    """Scale of the DequantizeLinear feeding the weight of every ``op_type`` node, in graph order."""
    producers = {output: node for node in model.graph.node for output in node.output}
    initializers = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    dequantizers = [producers[node.input[1]] for node in model.graph.node if node.op_type == op_type]
    assert all(node.op_type == "DequantizeLinear" for node in dequantizers)
    return [initializers[node.input[1]] for node in dequantizers]


def test_int8_file_is_under_035_of_fp32(mlp_fp32_path, mlp_int8_path):
    assert os.path.getsize(mlp_int8_path) < 0.35 * os.path.getsize(mlp_fp32_path)


def test_int8_predictions_agree_with_fp32(mlp_fp32_path, mlp_int8_path, blobs):
    X_test = blobs["X_test"]
    fp32_classes = OnnxModel(mlp_fp32_path).predict(X_test).argmax(1)
    int8_classes = OnnxModel(mlp_int8_path).predict(X_test).argmax(1)
    assert (fp32_classes == blobs["y_test"]).mean() >= 0.95  # the fixture model has learnt the blobs
    assert (int8_classes == fp32_classes).mean() >= 0.95


def test_graph_is_qdq_with_one_weight_scale_per_output_channel(mlp_int8_path):
    model = onnx.load(mlp_int8_path)
    assert {"QuantizeLinear", "DequantizeLinear"} <= {node.op_type for node in model.graph.node}
    assert [scale.size for scale in weight_scales(model, "Gemm")] == [300, 100, 10]


def test_per_tensor_quantization_has_one_scale_per_layer(mlp_fp32_path, blobs, tmp_path):
    path = quantize_int8(mlp_fp32_path, tmp_path / "m.onnx", blobs["X_train"][:64], per_channel=False)
    assert [scale.size for scale in weight_scales(onnx.load(path), "Gemm")] == [1, 1, 1]


def test_metadata_of_the_fp32_model_is_kept(mlp_int8_path):
    assert read_onnx_metadata(mlp_int8_path) == {
        "dataset": "blobs",
        "precision": "int8",
        "int8_calibration": "minmax",
        "int8_calibration_samples": "256",
        "int8_per_channel": "true",
        "int8_reduce_range": str(int8_module.cpu_lacks_vnni()).lower(),
    }


@pytest.mark.parametrize("method", ["minmax", "entropy", "percentile"])
def test_every_calibration_method_quantizes_a_conv_net(method, tmp_path):
    torch.manual_seed(0)
    conv = torch.nn.Sequential(
        torch.nn.Conv2d(1, 8, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Flatten(),
        torch.nn.Linear(8 * 6 * 6, 10),
    )
    fp32_path = export_onnx(conv, (1, 12, 12), tmp_path / "conv.onnx")
    calibration = np.random.default_rng(0).normal(size=(100, 1, 12, 12)).astype(np.float32)
    path = quantize_int8(fp32_path, tmp_path / "conv.int8.onnx", calibration, method=method, batch_size=32)
    assert [scale.size for scale in weight_scales(onnx.load(path), "Conv")] == [8]
    fp32_outputs = OnnxModel(fp32_path).predict(calibration)
    int8_outputs = OnnxModel(path).predict(calibration)
    assert np.abs(int8_outputs - fp32_outputs).mean() < 0.1 * np.abs(fp32_outputs).mean()
    metadata = read_onnx_metadata(path)
    assert (metadata["int8_calibration"], metadata["int8_calibration_samples"]) == (method, "96")


def test_reduce_range_keeps_weights_within_7_bits(mlp_fp32_path, blobs, tmp_path):
    path = quantize_int8(mlp_fp32_path, tmp_path / "m.onnx", blobs["X_train"][:64], reduce_range=True)
    model = onnx.load(path)
    int8_weights = [
        onnx.numpy_helper.to_array(t) for t in model.graph.initializer if t.data_type == onnx.TensorProto.INT8
    ]
    assert int8_weights and max(np.abs(w.astype(int)).max() for w in int8_weights) <= 64
    assert read_onnx_metadata(path)["int8_reduce_range"] == "true"


def test_leaves_no_temporary_files(mlp_fp32_path, blobs, tmp_path, monkeypatch):
    scratch = tmp_path / "system-temp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    quantize_int8(mlp_fp32_path, tmp_path / "out" / "m.onnx", blobs["X_train"][:64], method="entropy")
    assert list(scratch.iterdir()) == []
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["m.onnx"]
    assert sorted(p.name for p in mlp_fp32_path.parent.iterdir()) == ["mlp.onnx"]


def test_unknown_method_is_a_config_error_listing_the_valid_ones(mlp_fp32_path, blobs, tmp_path):
    with pytest.raises(ConfigError, match="'kl'.*minmax, entropy, percentile"):
        quantize_int8(mlp_fp32_path, tmp_path / "m.onnx", blobs["X_train"][:8], method="kl")
    assert list(tmp_path.iterdir()) == []


def test_calibration_of_the_wrong_shape_is_a_data_error_naming_both_shapes(mlp_fp32_path, tmp_path):
    with pytest.raises(DataError, match=r"samples of shape \(28, 28\).*expects samples of shape \(784,\)"):
        quantize_int8(mlp_fp32_path, tmp_path / "m.onnx", np.zeros((8, 28, 28), np.float32))
    with pytest.raises(DataError, match="no samples"):
        quantize_int8(mlp_fp32_path, tmp_path / "m.onnx", np.zeros((0, 784), np.float32))
    with pytest.raises(DataError, match="NaN"):
        quantize_int8(mlp_fp32_path, tmp_path / "m.onnx", np.full((8, 784), np.nan, np.float32))
    assert list(tmp_path.iterdir()) == []


def test_missing_or_corrupt_fp32_file_is_an_artifact_error(tmp_path):
    calibration = np.zeros((8, 784), np.float32)
    with pytest.raises(ArtifactError, match="not found"):
        quantize_int8(tmp_path / "absent.onnx", tmp_path / "m.onnx", calibration)
    (tmp_path / "corrupt.onnx").write_text("this is not a protobuf")
    with pytest.raises(ArtifactError, match="not a readable ONNX model"):
        quantize_int8(tmp_path / "corrupt.onnx", tmp_path / "m.onnx", calibration)
    assert not (tmp_path / "m.onnx").exists()


def test_vnni_check_is_false_off_x86(monkeypatch):
    monkeypatch.setattr(int8_module.platform, "machine", lambda: "arm64")
    assert int8_module.cpu_lacks_vnni() is False
