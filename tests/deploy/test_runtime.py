"""OnnxModel and read_onnx_metadata: batching, graph facts, and one-line errors for bad files and inputs."""

from __future__ import annotations

import numpy as np
import pytest

from wattless.deploy import OnnxModel, export_onnx, read_onnx_metadata
from wattless.errors import ArtifactError, ConfigError, DataError


def test_batched_prediction_equals_one_call(mlp_fp32_path, blobs):
    model = OnnxModel(mlp_fp32_path)
    X = blobs["X_test"][:50]
    whole = model.predict(X, batch_size=1000)
    assert whole.shape == (50, 10) and whole.dtype == np.float32
    np.testing.assert_allclose(model.predict(X, batch_size=7), whole, rtol=1e-6, atol=1e-6)


def test_empty_input_gives_empty_output_with_the_output_width(mlp_fp32_path):
    assert OnnxModel(mlp_fp32_path).predict(np.zeros((0, 784))).shape == (0, 10)


def test_exposes_input_name_per_sample_shape_and_metadata(mlp_fp32_path):
    model = OnnxModel(mlp_fp32_path, threads=2)
    assert (model.input_name, model.input_shape) == ("input", (784,))
    assert model.metadata == read_onnx_metadata(mlp_fp32_path) == {"dataset": "blobs", "precision": "fp32"}


def test_wrong_input_shape_is_a_data_error_naming_both_shapes(mlp_fp32_path):
    model = OnnxModel(mlp_fp32_path)
    with pytest.raises(DataError, match=r"samples of shape \(783,\).*expects samples of shape \(784,\)"):
        model.predict(np.zeros((4, 783)))
    with pytest.raises(DataError, match=r"samples of shape \(28, 28\)"):
        model.predict(np.zeros((4, 28, 28)))


@pytest.mark.parametrize("content", [b"", b"this is not a protobuf", b"\x08\x07\x12\x03abc"])
def test_corrupt_file_is_a_one_line_artifact_error(tmp_path, content):
    path = tmp_path / "bad.onnx"
    path.write_bytes(content)
    for load in (OnnxModel, read_onnx_metadata):
        with pytest.raises(ArtifactError, match="bad.onnx") as error:
            load(path)
        assert "\n" not in str(error.value)


def test_missing_file_is_an_artifact_error(tmp_path):
    for load in (OnnxModel, read_onnx_metadata):
        with pytest.raises(ArtifactError, match="not found"):
            load(tmp_path / "absent.onnx")


def test_bad_thread_count_or_batch_size_is_a_config_error(mlp_fp32_path):
    with pytest.raises(ConfigError, match="threads"):
        OnnxModel(mlp_fp32_path, threads=0)
    with pytest.raises(ConfigError, match="batch_size"):
        OnnxModel(mlp_fp32_path).predict(np.zeros((1, 784)), batch_size=0)


def test_input_shape_is_per_sample_for_every_test_model(tmp_path, model_and_shape):
    model, shape = model_and_shape
    assert OnnxModel(export_onnx(model, shape, tmp_path / "m.onnx")).input_shape == shape
