"""The configurable conv net: its layers follow the options, sizes are computed right for any image, and bad
options are clear errors."""

import pytest
import torch
from torch import nn

from wattless.errors import ModelError
from wattless.measurement import count_params
from wattless.models import build_model


def build(input_shape=(1, 28, 28), num_outputs=10, **kwargs):
    return build_model({"name": "cnn", "kwargs": kwargs, "input_shape": list(input_shape), "num_outputs": num_outputs})


def of_type(model, kind):
    return [m for m in model.modules() if isinstance(m, kind)]


def test_default_fashion_mnist_model():
    model = build()
    assert [(c.in_channels, c.out_channels, c.kernel_size) for c in of_type(model, nn.Conv2d)] == [
        (1, 32, (3, 3)), (32, 64, (3, 3)), (64, 128, (3, 3))]
    assert len(of_type(model, nn.BatchNorm2d)) == 3 and len(of_type(model, nn.MaxPool2d)) == 3
    # 28 -> 14 -> 7 -> 3 pixels: 128 * 3 * 3 features into the 128-unit hidden layer
    assert [(m.in_features, m.out_features) for m in of_type(model, nn.Linear)] == [(1152, 128), (128, 10)]
    assert count_params(model)[0] == 241_770
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_options_shape_the_layers():
    model = build((3, 32, 32), 100, channels=[8, 16], kernel_size=5, batch_norm=False, dropout=0.25, pool="avg",
                  hidden=0)
    assert not of_type(model, nn.BatchNorm2d)
    assert all(c.bias is not None and c.kernel_size == (5, 5) for c in of_type(model, nn.Conv2d))
    assert len(of_type(model, nn.AvgPool2d)) == 2
    assert [m.p for m in of_type(model, nn.Dropout)] == [0.25]
    assert [(m.in_features, m.out_features) for m in of_type(model, nn.Linear)] == [(16 * 8 * 8, 100)]
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 100)


@pytest.mark.parametrize("input_shape, kernel_size, pool", [
    ((1, 28, 28), 4, "max"),  # an even kernel grows the map by one pixel
    ((2, 3, 5), 3, "max"),  # pooling stops once the map is smaller than 2x2
    ((1, 9, 9), 3, "none"),
])
def test_feature_sizes_are_computed_for_any_image(input_shape, kernel_size, pool):
    model = build(input_shape, 4, channels=[4, 8, 8], kernel_size=kernel_size, pool=pool, hidden=8).eval()
    assert model(torch.randn(3, *input_shape)).shape == (3, 4)


@pytest.mark.parametrize("options, message", [
    ({"channels": []}, "channels"),
    ({"channels": [8, 0]}, "channels"),
    ({"kernel_size": 0}, "kernel_size"),
    ({"dropout": 1.0}, "dropout"),
    ({"pool": "median"}, "pool must be one of max, avg, none"),
    ({"hidden": -1}, "hidden"),
])
def test_bad_options_are_model_errors(options, message):
    with pytest.raises(ModelError, match=message):
        build(**options)
    with pytest.raises(ModelError, match="image inputs"):
        build((64,))
