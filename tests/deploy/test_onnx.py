"""export_onnx: outputs match PyTorch, dynamic batch, parametrizations, metadata, atomic writes."""

from __future__ import annotations

import copy

import numpy as np
import onnx
import pytest
import torch
from torch.nn.utils import parametrize

import wattless.deploy.onnx as onnx_export
from wattless.deploy import OnnxModel, export_onnx, read_onnx_metadata
from wattless.errors import ConfigError, DataError


def torch_outputs(model: torch.nn.Module, X: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model.eval()(torch.from_numpy(X)).numpy()


@pytest.mark.parametrize("batch", [1, 37])
def test_outputs_match_pytorch_at_any_batch_size(model_and_shape, batch, tmp_path):
    model, shape = model_and_shape
    path = export_onnx(model, shape, tmp_path / "model.onnx")
    X = np.random.default_rng(0).normal(size=(batch, *shape)).astype(np.float32)
    np.testing.assert_allclose(OnnxModel(path).predict(X), torch_outputs(model, X), rtol=1e-4, atol=1e-5)


def test_graph_has_named_input_with_symbolic_batch_and_named_output(tmp_path, small_mlp):
    graph = onnx.load(export_onnx(small_mlp, (20,), tmp_path / "m.onnx")).graph
    (graph_input,) = graph.input
    batch_dim, feature_dim = graph_input.type.tensor_type.shape.dim
    assert graph_input.name == "input" and batch_dim.dim_param and feature_dim.dim_value == 20
    assert [output.name for output in graph.output] == ["output"]


def test_parametrized_weights_are_baked_and_the_callers_model_is_untouched(tmp_path, masked_mlp):
    model = masked_mlp.train()
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    X = np.ones((2, 20), dtype=np.float32)
    outputs_before = torch_outputs(model, X)
    model.train()
    onnx_model = onnx.load(export_onnx(model, (20,), tmp_path / "masked.onnx"))

    assert "Mul" not in {node.op_type for node in onnx_model.graph.node}  # mask applied at export, not at run
    weights = {t.name: onnx.numpy_helper.to_array(t) for t in onnx_model.graph.initializer}
    first_layer = next(w for w in weights.values() if w.shape == (32, 20))
    np.testing.assert_array_equal(first_layer == 0, model[0].parametrizations.weight[0].mask == 0)
    assert model.training and parametrize.is_parametrized(model[0], "weight")
    assert all(torch.equal(before[name], tensor) for name, tensor in model.state_dict().items())
    np.testing.assert_array_equal(torch_outputs(model, X), outputs_before)


class LowRank(torch.nn.Module):
    """A parametrization stored as two tensors (rank-4 factors), like a factorized or coded weight."""

    def forward(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        return left @ right

    def right_inverse(self, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        U, S, Vh = torch.linalg.svd(weight, full_matrices=False)
        return U[:, :4] * S[:4], Vh[:4]


def test_parametrization_stored_as_several_tensors_exports_its_effective_weight(tmp_path, small_mlp):
    parametrize.register_parametrization(small_mlp[0], "weight", LowRank())
    onnx_model = onnx.load(export_onnx(small_mlp, (20,), tmp_path / "low_rank.onnx"))
    weights = [onnx.numpy_helper.to_array(t) for t in onnx_model.graph.initializer]
    first_layer = next(w for w in weights if w.shape == (32, 20))
    np.testing.assert_allclose(first_layer, small_mlp[0].weight.detach().numpy(), rtol=1e-6, atol=1e-7)
    assert parametrize.is_parametrized(small_mlp[0], "weight")


def test_metadata_round_trips_next_to_the_precision(tmp_path, small_mlp):
    metadata = {"dataset": "digits", "recipe": '{"steps": []}', "note": "naïve ✓"}
    path = export_onnx(small_mlp, (20,), tmp_path / "m.onnx", metadata=metadata)
    assert read_onnx_metadata(path) == {"precision": "fp32", **metadata}
    assert OnnxModel(path).metadata == {"precision": "fp32", **metadata}


def test_writes_one_self_contained_file_and_nothing_else(tmp_path, small_mlp):
    export_onnx(small_mlp, (20,), tmp_path / "out" / "m.onnx")
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["m.onnx"]
    initializers = onnx.load(tmp_path / "out" / "m.onnx", load_external_data=False).graph.initializer
    assert all(t.data_location == onnx.TensorProto.DEFAULT for t in initializers)


def test_failed_export_leaves_no_file_and_keeps_the_previous_one(tmp_path, small_mlp, monkeypatch):
    def broken_export(*args, **kwargs):
        raise RuntimeError("exporter exploded")

    target = tmp_path / "m.onnx"
    target.write_bytes(b"previous")
    monkeypatch.setattr(torch.onnx, "export", broken_export)
    with pytest.raises(RuntimeError, match="exploded"), pytest.warns(UserWarning, match="TorchScript"):
        export_onnx(small_mlp, (20,), target)
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"] and target.read_bytes() == b"previous"


def test_failed_check_leaves_no_file(tmp_path, small_mlp, monkeypatch):
    real_to_onnx = onnx_export._to_onnx
    other_model = copy.deepcopy(small_mlp).eval()
    torch.nn.init.constant_(other_model[0].bias, 1.0)
    # The graph written is another model's, as a buggy exporter would produce.
    monkeypatch.setattr(
        onnx_export, "_to_onnx", lambda model, sample, opset: real_to_onnx(other_model, sample, opset)
    )
    with pytest.raises(RuntimeError, match="disagrees with PyTorch"):
        export_onnx(small_mlp, (20,), tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


def test_falls_back_to_torchscript_with_a_warning(tmp_path, small_mlp, monkeypatch):
    real_export = torch.onnx.export

    def export_without_dynamo(*args, dynamo=True, **kwargs):
        if dynamo:
            raise RuntimeError("graph capture failed")
        return real_export(*args, dynamo=False, **kwargs)

    monkeypatch.setattr(torch.onnx, "export", export_without_dynamo)
    with pytest.warns(UserWarning, match="graph capture failed.*TorchScript"):
        path = export_onnx(small_mlp, (20,), tmp_path / "m.onnx")
    X = np.random.default_rng(0).normal(size=(37, 20)).astype(np.float32)
    np.testing.assert_allclose(OnnxModel(path).predict(X), torch_outputs(small_mlp, X), rtol=1e-4, atol=1e-5)


def test_exporter_prints_nothing(tmp_path, small_mlp, capsys):
    export_onnx(small_mlp, (20,), tmp_path / "m.onnx")
    assert capsys.readouterr().out == ""


def test_input_shape_the_model_cannot_take_is_a_data_error(tmp_path, small_mlp):
    with pytest.raises(DataError, match=r"per-sample shape \(7,\)"):
        export_onnx(small_mlp, (7,), tmp_path / "m.onnx")
    with pytest.raises(ConfigError, match="input_shape"):
        export_onnx(small_mlp, (0,), tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []
