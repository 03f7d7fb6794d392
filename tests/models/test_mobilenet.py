"""MobileNet: depthwise-separable blocks, the width multiplier, grouped pointwise convolutions with a channel
shuffle, and what structured pruning does with them."""

import numpy as np
import pytest
import torch
from torch import nn

from wattless.api import apply_steps
from wattless.data import Dataset
from wattless.deploy import OnnxModel, export_onnx
from wattless.errors import ConfigError, ModelError
from wattless.io import WattlessModel
from wattless.measurement import count_macs, count_params
from wattless.models import build_model
from wattless.models.mobilenet import ChannelShuffle


def spec(input_shape=(3, 32, 32), num_outputs=10, **kwargs):
    return {"name": "mobilenet", "kwargs": kwargs, "input_shape": list(input_shape), "num_outputs": num_outputs}


def convs(module):
    return [m for m in module.modules() if isinstance(m, nn.Conv2d)]


def test_cifar_mobilenet_is_depthwise_separable():
    model = build_model(spec())
    depthwise = [c for c in convs(model) if c.groups > 1]
    pointwise = [c for c in convs(model) if c.kernel_size == (1, 1)]
    assert len(depthwise) == len(pointwise) == 13
    assert all(c.groups == c.in_channels == c.out_channels and c.kernel_size == (3, 3) for c in depthwise)
    assert convs(model)[0].stride == (1, 1) and pointwise[-1].out_channels == 1024
    assert not any(isinstance(m, nn.ReLU) for m in model.modules())
    assert len([m for m in model.modules() if isinstance(m, nn.ReLU6)]) == 27
    assert count_params(model)[0] == 3_217_226


def test_width_multiplier_scales_channels():
    model = build_model(spec(width=0.5))
    assert convs(model)[0].out_channels == 16 and convs(model)[-1].out_channels == 512
    assert count_params(model)[0] < 0.3 * count_params(build_model(spec()))[0]


def test_grouped_pointwise_convolutions_are_cheaper_and_shuffled():
    grouped = build_model(spec(groups=4))
    pointwise = [c for c in convs(grouped) if c.kernel_size == (1, 1)]
    assert all(c.groups == 4 and c.in_channels % 4 == 0 and c.out_channels % 4 == 0 for c in pointwise)
    assert len([m for m in grouped.modules() if isinstance(m, ChannelShuffle)]) == 13
    plain = build_model(spec())
    assert count_params(grouped)[0] < 0.3 * count_params(plain)[0]
    assert count_macs(grouped, (3, 32, 32))["total"] < 0.3 * count_macs(plain, (3, 32, 32))["total"]
    assert grouped.eval()(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_channel_shuffle_interleaves_the_groups():
    x = torch.arange(6.0).reshape(1, 6, 1, 1)
    assert ChannelShuffle(2)(x).flatten().tolist() == [0, 3, 1, 4, 2, 5]
    assert ChannelShuffle(3)(x).flatten().tolist() == [0, 2, 4, 1, 3, 5]


def test_bad_options_are_model_errors():
    for options, message in (({"width": 0}, "width"), ({"groups": 0}, "groups"), ({"dropout": 1}, "dropout")):
        with pytest.raises(ModelError, match=message):
            build_model(spec(**options))
    with pytest.raises(ModelError, match="image inputs"):
        build_model(spec((6, 100)))


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(32, 3, 8, 8)).astype(np.float32)
    y = rng.integers(0, 10, 32)
    return Dataset("images", "classification", X, y, X, y, X, y, classes=[str(c) for c in range(10)])


def tiny(images, **kwargs):
    model_spec = spec((3, 8, 8), width=0.125, **kwargs)
    torch.manual_seed(0)
    return WattlessModel(build_model(model_spec).eval(), {"model": model_spec, "task": "classification",
                                                          "recipe": [], "seed": 0})


def test_structured_pruning_keeps_depthwise_layers_coupled(tmp_path, images):
    model = tiny(images)
    pruned = apply_steps(model, images, ["prune.structured:ratio=0.5,finetune_epochs=0"])
    depthwise = [c for c in convs(pruned.module) if c.groups > 1]
    assert all(c.groups == c.in_channels == c.out_channels for c in depthwise)
    assert count_params(pruned.module)[0] < 0.5 * count_params(model.module)[0]
    X = torch.as_tensor(images.X_test[:4])
    with torch.no_grad():
        expected = pruned.module.eval()(X).numpy()
    path = export_onnx(pruned.module, (3, 8, 8), tmp_path / "pruned.onnx")
    np.testing.assert_allclose(OnnxModel(path).predict(X.numpy()), expected, rtol=1e-4, atol=1e-5)


def test_structured_pruning_refuses_grouped_pointwise_convolutions(images):
    with pytest.raises(ConfigError, match="group"):
        apply_steps(tiny(images, groups=2), images, ["prune.structured:ratio=0.5,finetune_epochs=0"])
