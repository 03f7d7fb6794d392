"""Dynamic int8: a ts_transformer exported then dynamically quantized runs in ONNX Runtime, is smaller, keeps
the fp32 file's metadata and mostly agrees with fp32; Gemm layers are quantized too; nothing to quantize is an error."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from wattless.deploy import OnnxModel, export_onnx, quantize_dynamic_int8, read_onnx_metadata
from wattless.errors import ArtifactError, ConfigError
from wattless.models import build_model

SHAPE = (6, 100)  # BasicMotions: 6 sensor channels x 100 steps
META = {"wattless": json.dumps({"model": {"name": "ts_transformer"}, "recipe": []})}


def op_counts(path) -> Counter:
    return Counter(node.op_type for node in onnx.load(path).graph.node)


@pytest.fixture(scope="module")
def transformer_fp32(tmp_path_factory):
    torch.manual_seed(0)
    model = build_model({"name": "ts_transformer", "kwargs": {}, "input_shape": list(SHAPE), "num_outputs": 4})
    path = export_onnx(model, SHAPE, tmp_path_factory.mktemp("dyn") / "tst.onnx", metadata=META)
    return model.eval(), path


def test_default_transformer_exports_with_identical_outputs(transformer_fp32):
    model, path = transformer_fp32
    X = np.random.default_rng(0).normal(size=(16, *SHAPE)).astype(np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(X)).numpy()
    np.testing.assert_allclose(OnnxModel(path).predict(X), expected, atol=1e-4)


def test_dynamic_int8_transformer_is_smaller_and_agrees_with_fp32(tmp_path, transformer_fp32):
    _, fp32_path = transformer_fp32
    int8_path = quantize_dynamic_int8(fp32_path, tmp_path / "tst.int8.onnx")
    assert int8_path.stat().st_size < 0.5 * fp32_path.stat().st_size
    ops = op_counts(int8_path)
    # patch embedding, 2 blocks x (qkv, proj, fc1, fc2), head; the attention matmuls (two activations) stay fp32
    assert ops["MatMulInteger"] == 10 and ops["Gemm"] == 0
    X = np.random.default_rng(1).normal(size=(256, *SHAPE)).astype(np.float32)
    fp32, int8 = OnnxModel(fp32_path).predict(X), OnnxModel(int8_path).predict(X)
    assert np.isfinite(int8).all()
    assert (fp32.argmax(1) == int8.argmax(1)).mean() >= 0.9
    metadata = read_onnx_metadata(int8_path)
    assert metadata["wattless"] == META["wattless"]
    assert metadata["precision"] == "int8" and metadata["int8_mode"] == "dynamic"
    assert metadata["int8_per_channel"] == "true" and metadata["int8_quantized_layers"] == "10"


def test_gemm_layers_of_an_mlp_are_quantized(tmp_path):
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 5))
    fp32_path = export_onnx(mlp, (20,), tmp_path / "mlp.onnx")
    assert op_counts(fp32_path)["Gemm"] == 2
    int8_path = quantize_dynamic_int8(fp32_path, tmp_path / "mlp.int8.onnx", per_channel=False, reduce_range=True)
    assert op_counts(int8_path)["MatMulInteger"] == 2 and op_counts(int8_path)["Gemm"] == 0
    X = np.random.default_rng(0).normal(size=(64, 20)).astype(np.float32)
    np.testing.assert_allclose(OnnxModel(int8_path).predict(X), OnnxModel(fp32_path).predict(X), atol=0.05)
    assert read_onnx_metadata(int8_path)["int8_reduce_range"] == "true"


def test_nothing_to_quantize_and_bad_options_are_clear_errors(tmp_path, transformer_fp32):
    conv = nn.Sequential(nn.Conv2d(1, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    conv_path = export_onnx(conv, (1, 8, 8), tmp_path / "conv.onnx")
    with pytest.raises(ConfigError, match="static int8"):
        quantize_dynamic_int8(conv_path, tmp_path / "conv.int8.onnx")
    assert not (tmp_path / "conv.int8.onnx").exists()
    with pytest.raises(ConfigError, match="MatMul and Gemm"):
        quantize_dynamic_int8(transformer_fp32[1], tmp_path / "x.onnx", op_types=["Conv"])
    with pytest.raises(ArtifactError, match="not found"):
        quantize_dynamic_int8(tmp_path / "missing.onnx", tmp_path / "x.onnx")
