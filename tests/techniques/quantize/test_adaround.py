"""quantize.adaround: codes on the ptq grid that differ from nearest rounding only up or down, a lower layer-output
error than nearest rounding, seeded and packed like ptq, conv models, skip and clear errors."""

import dataclasses

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

import wattless
from wattless.api import apply_steps
from wattless.errors import ConfigError, DataError
from wattless.io import load, save
from wattless.packed import AffineWeight, PackedWeight, packed_bits
from wattless.techniques import Context, make_config
from wattless.techniques.quantize.adaround import (
    _forward_order,
    quantize_adaround,
    rectified_sigmoid,
    rounding_regulariser,
)

LAYERS = ("1", "3")  # the two Linear layers of the fixture MLP (64-32-10)
FAST = "iterations=300,samples=512"  # enough steps on the fixture models to beat nearest rounding clearly


def packed(module, layer):
    return module.get_submodule(layer).parametrizations.weight[-1]


def calibration_rows(digits, samples=512, seed=0):
    """The rows adaround calibrates on (same seeded draw)."""
    rows = np.sort(np.random.default_rng(seed).permutation(len(digits.X_train))[:samples])
    return torch.as_tensor(digits.X_train[rows])


def output_error(module, reference, X):
    with torch.no_grad():
        return float((module(X) - reference(X)).pow(2).sum(1).mean())


@pytest.fixture(scope="module")
def rounded(digits, trained_mlp):
    """3-bit nearest rounding and AdaRound of the fixture MLP."""
    nearest = apply_steps(trained_mlp, digits, ["quantize.ptq:bits=3,method=nearest,landmarks=uniform"])
    learned = apply_steps(trained_mlp, digits, [f"quantize.adaround:bits=3,{FAST}"])
    return nearest, learned


def test_codes_are_nearest_rounding_moved_up_or_down_on_the_same_grid(trained_mlp, rounded):
    nearest, learned = rounded
    assert packed_bits(learned.module) == {f"{layer}.weight": 3 for layer in LAYERS}
    flipped = 0
    for layer in LAYERS:
        ours, theirs = packed(learned.module, layer), packed(nearest.module, layer)
        assert isinstance(ours, AffineWeight) and ours.bits == 3
        assert torch.equal(ours.scale, theirs.scale) and torch.equal(ours.offset, theirs.offset)
        assert int(ours.codes.min()) >= 0 and int(ours.codes.max()) <= 7
        assert (ours.codes - theirs.codes).abs().max() <= 1
        flipped += int((ours.codes != theirs.codes).sum())
        weight = learned.module.get_submodule(layer).weight
        assert all(len(torch.unique(row)) <= 8 for row in weight)
        assert torch.equal(weight, ours.decode())  # the model runs exactly the stored codes
        assert torch.equal(learned.module.get_submodule(layer).bias, trained_mlp.module.get_submodule(layer).bias)
    assert flipped > 0  # it learned something other than nearest rounding


def test_layer_and_model_outputs_are_closer_to_float_than_nearest_rounding(digits, trained_mlp, rounded):
    nearest, learned = rounded
    X = calibration_rows(digits)
    first = trained_mlp.module[1]  # its inputs are the data, the same for both
    assert output_error(learned.module[1], first, X) < 0.5 * output_error(nearest.module[1], first, X)
    assert output_error(learned.module, trained_mlp.module, X) < output_error(nearest.module, trained_mlp.module, X)
    # and on rows it never saw
    X_val = torch.as_tensor(digits.X_val)
    assert output_error(learned.module, trained_mlp.module, X_val) < output_error(
        nearest.module, trained_mlp.module, X_val)


def test_zero_iterations_is_nearest_rounding(digits, trained_mlp, rounded):
    nearest, _ = rounded
    start = apply_steps(trained_mlp, digits, ["quantize.adaround:bits=3,iterations=0"])
    for layer in LAYERS:
        assert torch.equal(packed(start.module, layer).codes, packed(nearest.module, layer).codes)


@pytest.mark.parametrize("target", ["float", "quantized"])
def test_same_seed_same_file_and_round_trip(tmp_path, digits, trained_mlp, target):
    step = f"quantize.adaround:bits=2,iterations=50,samples=256,target={target}"
    first, same, other = (apply_steps(trained_mlp, digits, [step], seed=seed) for seed in (3, 3, 4))
    sizes = [save(model, tmp_path / f"{i}.wlz") for i, model in enumerate((first, same, other))]
    assert (tmp_path / "0.wlz").read_bytes() == (tmp_path / "1.wlz").read_bytes()
    assert not torch.equal(packed(first.module, "1").codes, packed(other.module, "1").codes)
    loaded = load(tmp_path / "0.wlz", keep_parametrizations=True)
    x = torch.as_tensor(digits.X_test[:50])
    with torch.no_grad():
        assert torch.equal(loaded.module(x), first.module(x))
    assert packed_bits(loaded.module) == {f"{layer}.weight": 2 for layer in LAYERS}
    ptq = save(apply_steps(trained_mlp, digits, ["quantize.ptq:bits=2"]), tmp_path / "ptq.wlz")
    assert abs(sizes[0] - ptq) <= 0.1 * ptq, (sizes[0], ptq)


def test_skip_leaves_a_layer_float(digits, trained_mlp):
    q = apply_steps(trained_mlp, digits, ["quantize.adaround:bits=2,iterations=20,skip=[1]"])
    assert packed_bits(q.module) == {"3.weight": 2}
    assert not parametrize.is_parametrized(q.module[1])
    assert torch.equal(q.module[1].weight, trained_mlp.module[1].weight)


def test_conv_model_beats_nearest_rounding(digit_images):
    images = digit_images
    cnn = wattless.train("cnn", images, model_kwargs={"channels": [8, 16], "hidden": 16}, epochs=2, seed=0)
    nearest = apply_steps(cnn, images, ["quantize.ptq:bits=2"])
    learned = apply_steps(cnn, images, [f"quantize.adaround:bits=2,{FAST}"])
    convs = [name for name, m in cnn.module.named_modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 2
    for name in convs:
        codes, nearest_codes = packed(learned.module, name).codes, packed(nearest.module, name).codes
        assert isinstance(packed(learned.module, name), AffineWeight) and codes.shape == nearest_codes.shape
        assert (codes - nearest_codes).abs().max() <= 1 and bool((codes != nearest_codes).any())
    first = cnn.module.get_submodule(convs[0])
    X = calibration_rows(images)
    assert output_error(learned.module.get_submodule(convs[0]), first, X) < output_error(
        nearest.module.get_submodule(convs[0]), first, X)
    assert output_error(learned.module, cnn.module, X) < output_error(nearest.module, cnn.module, X)


def test_quantizes_on_top_of_a_pruning_mask(tmp_path, digits, trained_mlp):
    q = apply_steps(trained_mlp, digits, ["prune.magnitude:sparsity=0.5,finetune_epochs=0",
                                          "quantize.adaround:bits=4,iterations=20"])
    chain = q.module[1].parametrizations.weight
    assert len(chain) == 2 and isinstance(chain[-1], PackedWeight)
    x = torch.as_tensor(digits.X_test[:20])
    save(q, tmp_path / "pq.wlz")
    with torch.no_grad():
        assert torch.equal(load(tmp_path / "pq.wlz").module(x), q.module(x))


def test_layers_are_calibrated_in_the_order_the_forward_pass_calls_them(digits):
    class Backwards(nn.Module):
        """Declares its layers in the opposite order to the one it calls them in, plus one it never calls."""

        def __init__(self):
            super().__init__()
            self.unused = nn.Linear(3, 3)
            self.second = nn.Linear(16, 10)
            self.first = nn.Linear(64, 16)

        def forward(self, x):
            return self.second(torch.relu(self.first(x)))

    torch.manual_seed(0)
    model = Backwards()
    layers = [(name, m) for name, m in model.named_children()]
    X = torch.as_tensor(digits.X_train[:8])
    assert [name for name, _ in _forward_order(model, layers, X)] == ["first", "second", "unused"]
    quantize_adaround(model, make_config("quantize.adaround", {"bits": 2, "iterations": 5}), Context(digits))
    assert isinstance(packed(model, "unused"), AffineWeight)  # never called: nearest rounding


def test_regulariser_and_its_hand_written_gradient():
    h = torch.tensor([0.0, 0.2, 0.5, 0.9, 1.0], dtype=torch.float64, requires_grad=True)
    for beta in (2.0, 7.5, 20.0):
        expected = (1 - (2 * h - 1).abs().pow(beta)).sum()
        assert torch.allclose(rounding_regulariser(h, beta), expected)
        got, = torch.autograd.grad(rounding_regulariser(h, beta), h)
        want, = torch.autograd.grad(expected, h)
        assert torch.allclose(got, want)
    assert torch.equal(rectified_sigmoid(torch.tensor([-20.0, 20.0])), torch.tensor([0.0, 1.0]))


@pytest.mark.parametrize("fields, message", [
    ("bits=0", "bits: Input should be greater than or equal to 1"),
    ("bits=17", "bits: Input should be less than or equal to 16"),
    ("iterations=-1", "iterations: Input should be greater than or equal to 0"),
    ("samples=0", "samples: Input should be greater than or equal to 1"),
    ("warmup=1", "warmup: Input should be less than 1"),
    ("target=int8", "target: Input should be 'float' or 'quantized'"),
    ("rounding=up", r"rounding: Extra inputs are not permitted.*fields: bits, iterations"),
])
def test_bad_configs_are_one_clear_error(fields, message):
    name, _, rest = f"quantize.adaround:{fields}".partition(":")
    key, _, value = rest.partition("=")
    with pytest.raises(ConfigError, match=message):
        make_config(name, {key: int(value) if value.lstrip("-").isdigit() else value})


def test_bad_requests_are_one_clear_error(digits, trained_mlp):
    with pytest.raises(ConfigError, match=r"skip names unknown layers \['fc9'\]"):
        apply_steps(trained_mlp, digits, ["quantize.adaround:skip=[fc9]"])
    empty = dataclasses.replace(digits, X_train=digits.X_train[:0], y_train=digits.y_train[:0])
    with pytest.raises(DataError, match="needs training rows"):
        apply_steps(trained_mlp, empty, ["quantize.adaround:iterations=1"])
