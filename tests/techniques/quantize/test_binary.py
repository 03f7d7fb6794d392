"""Binary and ternary weights: the value sets the papers define, 1- and 2-bit packed files, training that helps."""

import pytest
import torch

from wattless.api import apply_steps
from wattless.io import save
from wattless.packed import packed_bits
from wattless.techniques.quantize._layers import quantizable_layers
from wattless.train import evaluate


@pytest.fixture(scope="module")
def binary(digits, trained_mlp):
    return apply_steps(trained_mlp, digits, ["quantize.binary:lr=0.01"])


@pytest.fixture(scope="module")
def ternary(digits, trained_mlp):
    return apply_steps(trained_mlp, digits, ["quantize.ternary:lr=0.01"])


def accuracy(model, data):
    return evaluate(model.module, data.X_test, data.y_test, data.task)["accuracy"]


def test_binary_weights_take_exactly_two_opposite_values_per_channel(binary):
    assert set(packed_bits(binary.module).values()) == {1}
    for _, layer in quantizable_layers(binary.module):
        for row in layer.weight:
            values = row.unique()
            assert values.numel() == 2 and torch.allclose(values[0], -values[1])


def test_ternary_weights_take_at_most_three_values_with_zero(ternary):
    assert set(packed_bits(ternary.module).values()) == {2}
    for _, layer in quantizable_layers(ternary.module):
        for row in layer.weight:
            values = row.unique()
            assert values.numel() <= 3 and 0.0 in values.tolist()
            assert torch.allclose(values.abs()[values != 0], values.abs().max())


def test_binary_training_beats_binarizing_alone(digits, trained_mlp, binary):
    untrained = apply_steps(trained_mlp, digits, ["quantize.binary:epochs=0"])
    assert accuracy(binary, digits) > accuracy(untrained, digits)


def test_ternary_keeps_accuracy_within_two_points(digits, trained_mlp, ternary):
    assert accuracy(ternary, digits) >= accuracy(trained_mlp, digits) - 0.02


def test_fewer_bits_give_smaller_files(tmp_path, digits, trained_mlp, binary, ternary):
    qat4 = apply_steps(trained_mlp, digits, ["quantize.qat:bits=4,epochs=0"])
    sizes = [save(model, tmp_path / f"{i}.wlz") for i, model in enumerate([binary, ternary, qat4, trained_mlp])]
    assert sizes == sorted(sizes) and len(set(sizes)) == 4
