"""Quantization-aware training: gradients reach the full-precision weights, codes fit the bits, the frozen
model computes what was trained, and accuracy holds at 4 bits."""

import copy

import pytest
import torch
from torch.nn.utils import parametrize

from wattless.api import apply_steps
from wattless.errors import ConfigError
from wattless.io import load, save
from wattless.packed import AffineWeight, packed_bits
from wattless.techniques import make_config
from wattless.techniques.quantize._fake import ActivationQuantizer, UniformWeight, freeze_fake_quantizers
from wattless.techniques.quantize._layers import quantizable_layers
from wattless.train import evaluate


def accuracy(module, data):
    return evaluate(module, data.X_test, data.y_test, data.task)["accuracy"]


def fake_quantized(module, bits, method, granularity):
    """A copy of ``module`` with a training-time quantizer on every layer's weight."""
    module = copy.deepcopy(module)
    for _, layer in quantizable_layers(module):
        parametrize.register_parametrization(layer, "weight", UniformWeight(
            layer.weight, bits, learned_step=method == "lsq", per_channel=granularity == "channel"))
    return module


@pytest.mark.parametrize("method", ["ste", "lsq"])
def test_gradients_reach_every_full_precision_weight(digits, trained_mlp, method):
    module = fake_quantized(trained_mlp.module, 3, method, "channel")
    layers = quantizable_layers(module)
    logits = module(torch.as_tensor(digits.X_train[:64]))
    torch.nn.functional.cross_entropy(logits, torch.as_tensor(digits.y_train[:64]).long()).backward()
    for _, layer in layers:
        grad = layer.parametrizations["weight"].original.grad
        assert grad is not None and grad.abs().sum() > 0
        if method == "lsq":
            assert layer.parametrizations["weight"][0].step.grad.abs().sum() > 0


@pytest.mark.parametrize("method, granularity", [("ste", "channel"), ("lsq", "channel"), ("lsq", "tensor")])
def test_frozen_model_computes_what_was_trained(digits, trained_mlp, method, granularity):
    module = fake_quantized(trained_mlp.module, 4, method, granularity)
    x = torch.as_tensor(digits.X_test)
    with torch.no_grad():
        trained = module(x)
    freeze_fake_quantizers(module)
    for _, layer in quantizable_layers(module):
        assert isinstance(layer.parametrizations["weight"][-1], AffineWeight)
    with torch.no_grad():
        assert torch.equal(module(x), trained)


@pytest.fixture(scope="module")
def qat4(digits, trained_mlp):
    return apply_steps(trained_mlp, digits, ["quantize.qat:bits=4"])


def test_weights_take_at_most_2_to_the_bits_values_per_channel(digits, trained_mlp, qat4):
    assert set(packed_bits(qat4.module).values()) == {4}
    assert len(packed_bits(qat4.module)) == len(quantizable_layers(trained_mlp.module))
    for _, layer in quantizable_layers(qat4.module):
        assert all(row.unique().numel() <= 16 for row in layer.weight)
    two_bit = apply_steps(trained_mlp, digits, ["quantize.qat:bits=2,method=ste,granularity=tensor,epochs=1"])
    for _, layer in quantizable_layers(two_bit.module):
        assert layer.weight.unique().numel() <= 3  # symmetric STE grid: -1, 0, 1 times the step


def test_training_changed_the_weights(trained_mlp, qat4, digits):
    untrained = apply_steps(trained_mlp, digits, ["quantize.qat:bits=4,epochs=0"])
    layer = quantizable_layers(qat4.module)[0][1]
    assert not torch.equal(layer.weight, quantizable_layers(untrained.module)[0][1].weight)


def test_four_bit_qat_keeps_accuracy_within_two_points(digits, trained_mlp, qat4):
    assert accuracy(qat4.module, digits) >= accuracy(trained_mlp.module, digits) - 0.02


def test_activations_too_save_and_load_to_the_same_outputs(tmp_path, digits, trained_mlp):
    result = apply_steps(trained_mlp, digits, ["quantize.qat:activations=true,act_bits=6,epochs=2"])
    quantizers = [m for m in result.module.modules() if isinstance(m, ActivationQuantizer)]
    assert len(quantizers) == len(quantizable_layers(trained_mlp.module))
    assert all(q.momentum is None and int(q.bits) == 6 for q in quantizers)  # tracking stopped at freezing
    assert accuracy(result.module, digits) >= accuracy(trained_mlp.module, digits) - 0.03
    save(result, tmp_path / "q.wlz")
    x = torch.as_tensor(digits.X_test)
    with torch.no_grad():
        assert torch.equal(load(tmp_path / "q.wlz").module(x), result.module(x))


@pytest.mark.parametrize("fields, message", [
    ({"bits": 1}, "bits"), ({"bits": 9}, "bits"), ({"act_bits": 1}, "act_bits"), ({"method": "pact"}, "method"),
])
def test_bad_config_is_one_clear_error(fields, message):
    with pytest.raises(ConfigError, match=message):
        make_config("quantize.qat", fields)
