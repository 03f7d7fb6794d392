"""Activation quantization: calibration methods, low-bit layer inputs, saved models, ONNX export, bad input."""

import numpy as np
import pytest
import torch

from wattless.api import apply_steps
from wattless.deploy import export_onnx
from wattless.deploy.runtime import OnnxModel
from wattless.errors import ConfigError, DataError
from wattless.io import load, save
from wattless.techniques import make_config
from wattless.techniques.quantize._fake import ActivationQuantizer
from wattless.techniques.quantize._layers import quantizable_layers
from wattless.techniques.quantize.activations import calibration_range
from wattless.train import evaluate


@pytest.fixture(scope="module")
def activations():
    """10,000 values spread evenly over [-1, 2] plus one far outlier at 40."""
    return torch.cat([torch.linspace(-1.0, 2.0, 10_000), torch.tensor([40.0])])


def test_minmax_is_the_data_range(activations):
    assert calibration_range(activations, "minmax", 8) == (-1.0, 40.0)


def test_percentile_clips_the_outlier(activations):
    low, high = calibration_range(activations, "percentile", 8, percentile=99.9)
    assert low == pytest.approx(-0.997, abs=1e-3) and high == pytest.approx(1.997, abs=1e-3)


@pytest.mark.parametrize("bits", [3, 4])
def test_mse_picks_a_narrower_range_with_less_error(activations, bits):
    def error(low, high):
        quantizer = ActivationQuantizer(bits)
        quantizer.set_range(low, high)
        return float((quantizer(activations) - activations).pow(2).mean())

    low, high = calibration_range(activations, "mse", bits)
    assert -1.0 <= low <= 0.0 and 0.0 < high < 40.0
    assert error(low, high) < error(-1.0, 40.0)


def layer_inputs(module, x):
    """The (quantized) input every Linear/Conv layer receives for ``x``."""
    seen = {}
    hooks = [layer.register_forward_hook(lambda m, args, out, name=name: seen.__setitem__(name, args[0]))
             for name, layer in quantizable_layers(module)]
    with torch.no_grad():
        module(x)
    for hook in hooks:
        hook.remove()
    return seen


@pytest.mark.parametrize("step, max_levels", [
    ("quantize.activations:bits=3", 8),
    ("quantize.activations:bits=4,calibration=mse", 16),
    ("quantize.activations:bits=4,calibration=percentile,percentile=99,symmetric=true", 16),
])
def test_layer_inputs_take_at_most_2_to_the_bits_values_and_survive_saving(tmp_path, digits, trained_mlp, step,
                                                                          max_levels):
    result = apply_steps(trained_mlp, digits, [step])
    x = torch.as_tensor(digits.X_test)
    inputs = layer_inputs(result.module, x)
    assert len(inputs) == len(quantizable_layers(trained_mlp.module))
    assert all(values.unique().numel() <= max_levels for values in inputs.values())
    save(result, tmp_path / "a.wlz")
    loaded = load(tmp_path / "a.wlz").module
    assert {k: v for k, v in loaded.state_dict().items() if "input_quant" in k}.keys() == \
        {k for k in result.module.state_dict() if "input_quant" in k}
    with torch.no_grad():
        assert torch.equal(loaded(x), result.module(x))


def test_eight_bit_activations_keep_accuracy(digits, trained_mlp):
    result = apply_steps(trained_mlp, digits, ["quantize.activations"])
    before = evaluate(trained_mlp.module, digits.X_test, digits.y_test, digits.task)["accuracy"]
    after = evaluate(result.module, digits.X_test, digits.y_test, digits.task)["accuracy"]
    assert after >= before - 0.01


def test_onnx_export_runs_the_quantized_activations(tmp_path, digits, trained_mlp):
    result = apply_steps(trained_mlp, digits, ["quantize.activations:bits=4"])
    path = export_onnx(result.module, result.input_shape, tmp_path / "a.onnx")  # checks ORT against torch
    x = digits.X_test[:100]
    with torch.no_grad():
        expected = result.module(torch.as_tensor(x)).numpy()
    assert np.allclose(OnnxModel(path).predict(x), expected, rtol=1e-4, atol=1e-5)
    assert hasattr(result.module[1], "input_quant")  # the caller's model keeps its quantizers


def test_bad_input_is_one_clear_error(digits, trained_mlp):
    with pytest.raises(ConfigError, match="bits"):
        make_config("quantize.activations", {"bits": 1})
    with pytest.raises(DataError, match="calibration rows"):
        apply_steps(trained_mlp, digits, ["quantize.activations:samples=0"])
