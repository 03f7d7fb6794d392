"""Parameters, non-zeros and bit widths that count_onnx_macs reads from an ONNX graph itself: fp32, static int8
QDQ and dynamic int8 exports of the project's exporters, and hand-built graphs for the quantized edge cases."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from sklearn.datasets import load_digits
from torch import nn

from wattless import deploy
from wattless.measurement import count_onnx_macs
from wattless.models import build_model

DIGITS_SHAPE = (1, 8, 8)


def zero_weights(layer: nn.Module, count: int) -> int:
    """Set the first ``count`` weights of ``layer`` to zero (as pruning does); returns ``count``."""
    with torch.no_grad():
        layer.weight.view(-1)[:count] = 0
    return count


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    """scikit-learn's 8 x 8 digits scaled to [0, 1], shaped (n, 1, 8, 8)."""
    return (load_digits().data / 16.0).astype(np.float32).reshape(-1, *DIGITS_SHAPE)


@pytest.fixture(scope="module")
def pruned_conv_net(tmp_path_factory):
    """A small conv net for digits with 5 conv and 30 linear weights set to zero, exported fp32."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                          nn.Linear(4 * 4 * 4, 10))
    pruned = {"conv": zero_weights(model[0], 5), "linear": zero_weights(model[4], 30)}
    path = deploy.export_onnx(model, DIGITS_SHAPE, tmp_path_factory.mktemp("conv") / "conv.onnx")
    return model, pruned, path


def test_fp32_mlp_params_and_nonzeros_are_the_models(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 5))
    pruned = [zero_weights(model[0], 7), zero_weights(model[2], 11), 0]

    result = count_onnx_macs(deploy.export_onnx(model, (20,), tmp_path / "mlp.onnx"))

    params = sum(p.numel() for p in model.parameters())
    assert result["params"] == params
    assert result["nonzero_params"] == int(sum(torch.count_nonzero(p) for p in model.parameters())) == params - 18
    linears = [model[0], model[2], model[4]]
    assert [layer["nonzero"] for layer in result["layers"]] == [
        linear.weight.numel() - zeros for linear, zeros in zip(linears, pruned, strict=True)]
    assert [(layer["weight_bits"], layer["act_bits"]) for layer in result["layers"]] == [(32, 32)] * 3
    assert list(result["weight_bits"].values()) == [32, 32, 32]
    assert result["params_by_precision"] == {"fp32": {"bits": 32, "params": params, "nonzero": params - 18}}
    assert result["other_layers"] == []  # every bias is a Gemm's


def test_static_int8_layers_are_8_bit_keep_the_params_and_their_zeros(tmp_path, digits, pruned_conv_net):
    model, pruned, fp32_path = pruned_conv_net
    int8_path = deploy.quantize_int8(fp32_path, tmp_path / "conv.int8.onnx", digits[:256], per_channel=True)
    assert any(node.op_type == "DequantizeLinear" for node in onnx.load(int8_path).graph.node)

    fp32, int8 = count_onnx_macs(fp32_path), count_onnx_macs(int8_path)

    assert [layer["type"] for layer in int8["layers"]] == ["Conv", "Gemm"]
    assert [(layer["weight_bits"], layer["act_bits"]) for layer in int8["layers"]] == [(8, 8), (8, 8)]
    assert int8["params"] == fp32["params"] == sum(p.numel() for p in model.parameters())
    weights = model[0].weight.numel() + model[4].weight.numel()
    biases = model[0].bias.numel() + model[4].bias.numel()
    assert {label: entry["params"] for label, entry in int8["params_by_precision"].items()} == {
        "int8": weights, "int32": biases}
    # a pruned weight quantizes to its zero point: still zero; rounding may zero a few more
    conv, linear = int8["layers"]
    assert conv["nonzero"] <= conv["weight_numel"] - pruned["conv"]
    assert linear["nonzero"] <= linear["weight_numel"] - pruned["linear"]
    assert int8["nonzero_params"] == conv["nonzero"] + linear["nonzero"] + biases
    assert conv["nonzero"] == dequantized_nonzero(int8_path, "Conv")


def dequantized_nonzero(path, op_type: str) -> int:
    """Non-zeros of the dequantized weight of the first ``op_type`` node, with numpy's broadcasting."""
    graph = onnx.load(path).graph
    arrays = {tensor.name: numpy_helper.to_array(tensor) for tensor in graph.initializer}
    dequantizers = {node.output[0]: node for node in graph.node if node.op_type == "DequantizeLinear"}
    node = next(node for node in graph.node if node.op_type == op_type)
    quantized, scale, zero_point = (arrays[name] for name in dequantizers[node.input[1]].input)
    shape = (-1,) + (1,) * (quantized.ndim - 1)  # per output channel
    real = (quantized.astype(np.int32) - zero_point.reshape(shape)) * scale.reshape(shape)
    return int(np.count_nonzero(real))


def test_dynamic_int8_transformer_prices_only_matmul_weights_at_8_bits(tmp_path):
    torch.manual_seed(0)
    spec = {"name": "ts_transformer", "input_shape": [4, 20], "num_outputs": 3,
            "kwargs": {"patch_size": 5, "d_model": 16, "depth": 1, "heads": 2}}
    model = build_model(spec).eval()
    norms = [module for module in model.modules() if isinstance(module, nn.LayerNorm)]
    with torch.no_grad():  # trained-like LayerNorms: the exporter stores equal tensors once
        for norm in norms:
            norm.weight.normal_(1.0, 0.1)
            norm.bias.normal_(0.0, 0.1)
    fp32_path = deploy.export_onnx(model, (4, 20), tmp_path / "tst.onnx")
    int8_path = deploy.quantize_dynamic_int8(fp32_path, tmp_path / "tst.int8.onnx")

    fp32, int8 = count_onnx_macs(fp32_path), count_onnx_macs(int8_path)

    params = sum(p.numel() for p in model.parameters())
    assert fp32["params"] == int8["params"] == params  # not the attention scale, nor shapes, nor quant scales
    weighted = [layer for layer in int8["layers"] if layer["weight_bits"] is not None]
    attention = [layer for layer in int8["layers"] if layer["weight_bits"] is None]
    # patch embedding, qkv, proj, fc1, fc2, head
    assert [layer["type"] for layer in weighted] == ["MatMulInteger"] * 6
    assert all(layer["weight_bits"] == 8 and layer["act_bits"] == 8 for layer in weighted)
    # scores and weighted values: two fp32 activations
    assert [(layer["type"], layer["act_bits"], layer["nonzero"]) for layer in attention] == [("MatMul", 32, None)] * 2
    assert set(int8["weight_bits"].values()) == {8}
    layer_norms = [row for row in int8["other_layers"] if row["type"] == "LayerNormalization"]
    assert [(row["params"], row["weight_bits"]) for row in layer_norms] == [(2 * 16, 32)] * len(norms)
    linear_weights = sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Linear))
    by_precision = int8["params_by_precision"]
    assert by_precision["int8"]["params"] == linear_weights
    assert by_precision["fp32"]["params"] == params - linear_weights  # biases, LayerNorms, positional embedding
    assert fp32["params_by_precision"]["fp32"]["params"] == params


def matmul_model(weight: np.ndarray, zero_point: np.ndarray, *, integer_op: bool,
                 weight_type: int = TensorProto.UINT8) -> onnx.ModelProto:
    """y = x @ W with W stored as quantized integers: via DequantizeLinear (QDQ), or read by MatMulInteger after
    DynamicQuantizeLinear (dynamic int8)."""
    k, n = weight.shape
    initializers = [
        numpy_helper.from_array(weight, "w_q"),
        numpy_helper.from_array(zero_point, "w_zero_point"),
        numpy_helper.from_array(np.full(zero_point.shape, 0.1, np.float32), "w_scale"),
    ]
    if integer_op:
        nodes = [
            helper.make_node("DynamicQuantizeLinear", ["x"], ["x_q", "x_scale", "x_zero_point"]),
            helper.make_node("MatMulInteger", ["x_q", "w_q", "x_zero_point", "w_zero_point"], ["y_int"],
                             name="matmul"),
            helper.make_node("Cast", ["y_int"], ["y_cast"], to=TensorProto.FLOAT),
            helper.make_node("Mul", ["x_scale", "w_scale"], ["y_scale"]),
            helper.make_node("Mul", ["y_cast", "y_scale"], ["y"]),
        ]
    else:
        nodes = [
            helper.make_node("DequantizeLinear", ["w_q", "w_scale", "w_zero_point"], ["w"], axis=1),
            helper.make_node("MatMul", ["x", "w"], ["y"], name="matmul"),
        ]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", n])], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    return model


UINT8_WEIGHT = np.array([[128, 0, 7], [128, 3, 0], [5, 3, 200], [128, 3, 0]], dtype=np.uint8)
PER_COLUMN_ZERO_POINT = np.array([128, 3, 0], dtype=np.uint8)
# values that differ from their column's zero point: column 0 -> 1 (the 5), column 1 -> 1 (the 0), column 2 -> 2
PER_COLUMN_NONZERO = 4


@pytest.mark.parametrize("integer_op", [False, True], ids=["qdq", "matmulinteger"])
def test_uint8_weights_count_values_away_from_their_zero_point(integer_op):
    result = count_onnx_macs(matmul_model(UINT8_WEIGHT, PER_COLUMN_ZERO_POINT, integer_op=integer_op))

    (layer,) = result["layers"]
    assert layer["nonzero"] == PER_COLUMN_NONZERO  # np.count_nonzero of the stored bytes would say 10
    assert (layer["weight_bits"], layer["act_bits"]) == (8, 8 if integer_op else 32)
    # the scale and zero point are quantization metadata, not parameters
    assert (result["params"], result["nonzero_params"]) == (UINT8_WEIGHT.size, PER_COLUMN_NONZERO)
    assert result["params_by_precision"] == {"uint8": {"bits": 8, "params": 12, "nonzero": PER_COLUMN_NONZERO}}


def test_a_scalar_zero_point_applies_to_every_value():
    result = count_onnx_macs(matmul_model(UINT8_WEIGHT, np.array(128, dtype=np.uint8), integer_op=False))
    assert result["layers"][0]["nonzero"] == UINT8_WEIGHT.size - 3


def test_weights_in_an_external_file_are_read_from_beside_the_model(tmp_path):
    weight = np.zeros((64, 8), dtype=np.float32)
    weight[:5, 0] = 1.0
    model = helper.make_model(helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"], name="matmul")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 8])],
        [numpy_helper.from_array(weight, "w")]), opset_imports=[helper.make_opsetid("", 13)])
    path = tmp_path / "external.onnx"
    onnx.save_model(model, path, save_as_external_data=True, location="external.onnx.data", size_threshold=0)

    assert count_onnx_macs(path)["nonzero_params"] == 5
    graph_only = onnx.load(path, load_external_data=False)
    (tmp_path / "external.onnx.data").unlink()
    for missing in (path, graph_only):
        result = count_onnx_macs(missing)
        assert (result["params"], result["nonzero_params"]) == (weight.size, None)
        assert result["layers"][0]["nonzero"] is None and result["layers"][0]["weight_bits"] == 32


def test_parameters_are_learned_values_not_shapes_nor_constants_of_the_computation():
    """x @ w + b (a 1-output layer: its bias is one value), times the scalar s, tiled by an int64 repeats
    tensor, then LayerNorm: the parameters are w, b and the LayerNorm's scale and bias."""
    rng = np.random.default_rng(0)
    values = {"w": rng.normal(size=(4, 1)), "b": [0.5], "s": [2.0], "norm_scale": rng.normal(size=4),
              "norm_bias": [0.0, 0.1, 0.2, 0.3]}
    initializers = [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in values.items()]
    initializers.append(numpy_helper.from_array(np.array([1, 4], np.int64), "repeats"))
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["xw"], name="linear"),
        helper.make_node("Add", ["xw", "b"], ["xwb"], name="bias"),
        helper.make_node("Mul", ["xwb", "s"], ["scaled"], name="scale"),
        helper.make_node("Tile", ["scaled", "repeats"], ["tiled"], name="tile"),
        helper.make_node("LayerNormalization", ["tiled", "norm_scale", "norm_bias"], ["y"], name="norm"),
    ]
    model = helper.make_model(helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])], initializers),
        opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)

    result = count_onnx_macs(model)

    assert (result["params"], result["nonzero_params"]) == (4 + 1 + 4 + 4, 4 + 1 + 4 + 3)
    assert [(row["name"], row["params"]) for row in result["other_layers"]] == [("bias", 1), ("norm", 8)]
    assert result["weight_bits"] == {"linear": 32}
