"""The time-series transformer: patching and padding, equivalence with nn.TransformerEncoderLayer, MAC counts,
and which techniques it takes (every weight matrix is an nn.Linear; structured pruning is refused clearly)."""

import numpy as np
import pytest
import torch
from torch import nn

from wattless.data import Dataset
from wattless.errors import ModelError
from wattless.measurement import count_macs, count_params
from wattless.models import build_model
from wattless.models.transformer import EncoderBlock
from wattless.techniques import Context
from wattless.techniques.prune.structured import StructuredPruneConfig, prune_structured


def build(input_shape=(6, 100), num_outputs=4, **kwargs):
    return build_model({"name": "ts_transformer", "kwargs": kwargs, "input_shape": list(input_shape),
                        "num_outputs": num_outputs})


def test_default_basic_motions_model():
    model = build()
    assert (model.num_patches, model.pad, model.patch_embed.in_features) == (20, 0, 30)
    assert len(model.encoder) == 2 and model.encoder[0].heads == 4 and model.encoder[0].fc1.out_features == 128
    assert count_params(model)[0] == 70_596
    assert model.eval()(torch.randn(3, 6, 100)).shape == (3, 4)


def test_patches_hold_every_channel_and_the_end_is_zero_padded():
    model = build((2, 7), patch_size=3, d_model=8, heads=2)
    assert (model.num_patches, model.pad) == (3, 2)
    x = torch.arange(1.0, 15.0).reshape(1, 2, 7)  # channel 0: 1..7, channel 1: 8..14
    tokens = model.patches(x)
    assert tokens.shape == (1, 3, 6)
    assert tokens[0, 0].tolist() == [1, 2, 3, 8, 9, 10]  # steps 0-2 of channel 0, then of channel 1
    assert tokens[0, 2].tolist() == [7, 0, 0, 14, 0, 0]


def reference_layer_with_the_same_weights(block: EncoderBlock, d_model, heads, hidden):
    reference = nn.TransformerEncoderLayer(d_model, heads, hidden, dropout=0.0, activation="gelu", batch_first=True,
                                           norm_first=True)
    names = {"self_attn.in_proj_weight": "qkv.weight", "self_attn.in_proj_bias": "qkv.bias",
             "self_attn.out_proj.weight": "proj.weight", "self_attn.out_proj.bias": "proj.bias",
             "linear1.weight": "fc1.weight", "linear1.bias": "fc1.bias",
             "linear2.weight": "fc2.weight", "linear2.bias": "fc2.bias"}
    ours = block.state_dict()
    reference.load_state_dict({name: ours[names.get(name, name)] for name in reference.state_dict()})
    return reference


@pytest.mark.parametrize("training", [False, True])
def test_block_computes_what_nn_transformer_encoder_layer_computes(training):
    torch.manual_seed(0)
    block = EncoderBlock(16, 4, 24, dropout=0.0).train(training)
    reference = reference_layer_with_the_same_weights(block, 16, 4, 24).train(training)
    x = torch.randn(3, 5, 16)
    with torch.set_grad_enabled(training):  # eval without grad is PyTorch's fused fast path
        torch.testing.assert_close(block(x), reference(x), rtol=1e-5, atol=1e-5)


def test_every_weight_matrix_is_a_linear_layer():
    # so weight quantization, pruning, sharing, factorization and activation quantizers reach all of them
    model = build(depth=3)
    in_linear = {f"{name}.{p}" for name, m in model.named_modules() if isinstance(m, nn.Linear)
                 for p, _ in m.named_parameters()}
    in_norms = {f"{name}.{p}" for name, m in model.named_modules() if isinstance(m, nn.LayerNorm)
                for p, _ in m.named_parameters()}
    assert {name for name, _ in model.named_parameters()} == in_linear | in_norms | {"pos_embed"}
    assert len([m for m in model.modules() if isinstance(m, nn.Linear)]) == 1 + 3 * 4 + 1


def test_macs_count_every_matmul_and_attention():
    channels, length, patch, d, depth, hidden, classes = 6, 100, 5, 64, 2, 128, 4
    n = length // patch
    per_block = n * d * 3 * d + 2 * n * n * d + n * d * d + 2 * n * d * hidden
    expected = n * channels * patch * d + depth * per_block + d * classes
    assert count_macs(build(), (channels, length))["total"] == expected == 1_451_776


@pytest.mark.parametrize("options, message", [
    ({"d_model": 30, "heads": 4}, "multiple of heads"),
    ({"patch_size": 0}, "patch_size"),
    ({"depth": 0}, "depth"),
    ({"mlp_ratio": 0}, "mlp_ratio"),
    ({"dropout": 1.0}, "dropout"),
])
def test_bad_options_are_model_errors(options, message):
    with pytest.raises(ModelError, match=message):
        build(**options)
    with pytest.raises(ModelError, match="channels, length"):
        build((3, 32, 32))


def test_structured_pruning_narrows_the_feed_forward_layers_and_keeps_the_attention_width():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(16, 6, 20)).astype(np.float32)
    y = rng.integers(0, 4, 16)
    series = Dataset("series", "classification", X, y, X, y, X, y, classes=list("abcd"))
    model = build((6, 20), patch_size=5, d_model=16, heads=2)
    with pytest.warns(UserWarning, match=r"kept 1 channel group\(s\) whole.*unflatten.*encoder.0.qkv"):
        narrowed = prune_structured(model, StructuredPruneConfig(finetune_epochs=0), Context(dataset=series))
    assert count_params(narrowed)[0] < count_params(model)[0]
    assert narrowed.encoder[0].qkv.out_features == model.encoder[0].qkv.out_features  # the heads' width is kept
    assert narrowed(torch.from_numpy(X[:2])).shape == (2, 4) and model(torch.from_numpy(X[:2])).shape == (2, 4)
