"""MAC and parameter counts against hand-computed values, for PyTorch models and their ONNX exports."""

from __future__ import annotations

import onnx
import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from wattless.errors import ArtifactError
from wattless.measurement import count_macs, count_onnx_macs, count_params

MLP_MACS = 784 * 300 + 300 * 10
# (out channels * out positions) * (in channels / groups * kernel) per layer of the conv net
CONV_LAYER_MACS = {
    "0": 8 * 16 * 16 * (3 * 9),
    "2": 16 * 8 * 8 * (8 // 4 * 9),
    "4": 16 * 8 * 8 * (16 * 9),
    "6": 16 * 8 * 8 * 10,
}


def test_mlp_macs_and_layers_match_hand_count(mlp):
    result = count_macs(mlp, (784,))

    assert result["total"] == MLP_MACS
    first, second = result["layers"]
    assert first == {"name": "0", "type": "Linear", "macs": 784 * 300, "params": 784 * 300 + 300,
                     "weight_numel": 784 * 300, "in_elems": 784, "out_elems": 300}
    assert (second["name"], second["macs"]) == ("2", 300 * 10)
    assert (second["in_elems"], second["out_elems"]) == (300, 10)


def test_conv_net_macs_follow_stride_padding_groups_and_dilation(conv_net):
    result = count_macs(conv_net, (3, 16, 16))

    assert {layer["name"]: layer["macs"] for layer in result["layers"]} == CONV_LAYER_MACS
    assert result["total"] == sum(CONV_LAYER_MACS.values())
    grouped = result["layers"][1]
    assert grouped["weight_numel"] == 16 * 2 * 3 * 3
    assert (grouped["in_elems"], grouped["out_elems"]) == (8 * 16 * 16, 16 * 8 * 8)


@pytest.mark.parametrize(("layer", "input_shape", "macs"), [
    (nn.Conv1d(2, 4, 5, padding=2), (2, 20), 4 * 20 * 2 * 5),
    (nn.Conv3d(2, 4, 3, stride=2), (2, 7, 7, 7), 4 * 3 * 3 * 3 * 2 * 27),
    # each input position is spread over (out channels / groups) x kernel outputs
    (nn.ConvTranspose2d(4, 6, 3, stride=2, groups=2), (4, 5, 5), 4 * 5 * 5 * (6 // 2) * 9),
])
def test_single_layer_macs(layer, input_shape, macs):
    assert count_macs(layer, input_shape)["total"] == macs


@pytest.mark.parametrize("need_weights", [True, False])
def test_multihead_attention_counts_projections_and_both_attention_matmuls(need_weights):
    length, embed = 5, 16

    class SelfAttention(nn.Module):
        def __init__(self):
            super().__init__()
            self.attention = nn.MultiheadAttention(embed, num_heads=4, batch_first=True)

        def forward(self, x):
            return self.attention(x, x, x, need_weights=need_weights)[0]

    in_projection, scores, weighted_values, out_projection = (
        3 * length * embed * embed, length * length * embed, length * length * embed, length * embed * embed)
    result = count_macs(SelfAttention(), (length, embed))

    assert result["total"] == in_projection + scores + weighted_values + out_projection
    assert torch.backends.mha.get_fastpath_enabled()


def test_parametrized_weights_count_once_and_their_reconstruction_is_not_a_mac():
    class LowRank(nn.Module):
        """Effective weight u @ v: a matmul that runs once per forward, not per sample."""

        def __init__(self):
            super().__init__()
            self.u, self.v = nn.Parameter(torch.randn(10, 2)), nn.Parameter(torch.randn(2, 20))

        def forward(self, weight):
            return self.u @ self.v

    class HalfMask(nn.Module):
        def forward(self, weight):
            return weight * (torch.arange(weight.numel()).reshape(weight.shape) % 2)

    model = nn.Sequential(nn.Linear(20, 10), nn.Linear(10, 4))
    parametrize.register_parametrization(model[0], "weight", LowRank())
    parametrize.register_parametrization(model[1], "weight", HalfMask())

    result = count_macs(model, (20,))

    assert result["total"] == 20 * 10 + 10 * 4
    assert [layer["name"] for layer in result["layers"]] == ["0", "1"]
    assert [layer["params"] for layer in result["layers"]] == [210, 44]
    assert count_params(model) == (210 + 44, 210 + 20 + 4)


def test_count_params_counts_tied_weights_once_and_zeros_apart():
    model = nn.Sequential(nn.Linear(6, 6, bias=False), nn.Linear(6, 6, bias=False))
    model[1].weight = model[0].weight
    with torch.no_grad():
        model[0].weight[:3] = 0

    assert count_params(model) == (36, 18)


def test_count_macs_restores_training_mode(mlp):
    mlp.train()
    count_macs(mlp, (784,))
    assert mlp.training


@pytest.mark.parametrize(("name", "input_shape"), [("mlp", (784,)), ("conv", (3, 16, 16))])
@pytest.mark.parametrize("precision", ["", "-int8"])
def test_onnx_macs_equal_torch_macs(onnx_models, mlp, conv_net, name, input_shape, precision):
    torch_layers = count_macs({"mlp": mlp, "conv": conv_net}[name], input_shape)["layers"]
    path = onnx_models[name + precision]
    if precision:
        assert any(node.op_type == "DequantizeLinear" for node in onnx.load(path).graph.node)

    onnx_layers = count_onnx_macs(path)["layers"]

    for key in ("macs", "params", "weight_numel", "in_elems", "out_elems"):
        assert [layer[key] for layer in onnx_layers] == [layer[key] for layer in torch_layers], key
    assert all(layer["name"] for layer in onnx_layers)


def test_onnx_macs_accept_a_loaded_model(onnx_models):
    assert count_onnx_macs(onnx.load(onnx_models["mlp"]))["total"] == MLP_MACS


def test_onnx_matmul_of_two_activations_has_no_weights(tmp_path, export_onnx):
    class Gram(nn.Module):
        def forward(self, x):
            return x @ x.transpose(1, 2)

    result = count_onnx_macs(export_onnx(Gram(), (4, 6), tmp_path / "gram.onnx"))

    assert result["total"] == 4 * 4 * 6
    assert result["layers"][0]["weight_numel"] == 0
    assert result["layers"][0]["in_elems"] == 2 * 4 * 6


def test_onnx_with_fixed_batch_above_one_is_refused(tmp_path, mlp, export_onnx):
    path = export_onnx(mlp, (784,), tmp_path / "fixed.onnx", dynamic_batch=False)
    with pytest.raises(ArtifactError, match="fixed batch size of 2"):
        count_onnx_macs(path)


def test_missing_or_corrupt_onnx_is_an_artifact_error(tmp_path, corrupt_onnx):
    with pytest.raises(ArtifactError, match="not a valid ONNX file"):
        count_onnx_macs(corrupt_onnx)
    with pytest.raises(ArtifactError, match="not found"):
        count_onnx_macs(tmp_path / "missing.onnx")
