"""Learned bit widths: the penalty drives the widths to the target, the widths differ by layer, pruned weights stay
zero, the frozen model computes what was trained and stores each layer at its width."""

import copy
import math

import pytest
import torch
from torch.nn.utils import parametrize

from wattless.api import apply_steps
from wattless.errors import ConfigError
from wattless.io import load, save
from wattless.packed import CodebookWeight, packed_bits
from wattless.techniques import make_config
from wattless.techniques.quantize._fake import freeze_fake_quantizers
from wattless.techniques.quantize._layers import quantizable_layers
from wattless.techniques.quantize.learned_bits import (
    LearnedWidthWeight,
    codes_of_levels,
    interleaved_levels,
    size_penalty,
)
from wattless.train import evaluate


def accuracy(module, data):
    return evaluate(module, data.X_test, data.y_test, data.task)["accuracy"]


def test_codes_interleave_the_levels_with_zero_first():
    levels = interleaved_levels(7)
    assert levels.tolist() == [0, 1, -1, 2, -2, 3, -3]
    assert torch.equal(codes_of_levels(levels), torch.arange(7, dtype=torch.int32))


def with_learned_widths(module, init_bits=4.0, max_bits=8):
    module = copy.deepcopy(module)
    quantizers = []
    for _, layer in quantizable_layers(module):
        quantizer = LearnedWidthWeight(layer.weight, init_bits, max_bits)
        parametrize.register_parametrization(layer, "weight", quantizer)
        quantizers.append(quantizer)
    return module, quantizers


def test_task_loss_and_penalty_both_reach_step_and_range(digits, trained_mlp):
    module, quantizers = with_learned_widths(trained_mlp.module, init_bits=2.0)  # narrow: many weights clipped
    logits = module(torch.as_tensor(digits.X_train[:128]))
    torch.nn.functional.cross_entropy(logits, torch.as_tensor(digits.y_train[:128]).long()).backward()
    clipped = 0
    for (_, layer), quantizer in zip(quantizable_layers(module), quantizers, strict=True):
        assert quantizer.log_step.grad != 0
        weight = layer.parametrizations["weight"].original.detach()
        if (weight.abs() > quantizer.steps() * quantizer.step()).any():  # clipped weights: the task wants more range
            clipped += 1
            assert quantizer.log_steps.grad < 0
    assert clipped
    for quantizer in quantizers:
        quantizer.zero_grad()
    cfg = make_config("quantize.learned_bits", {"target_bits": 1.58, "penalty": 1.0})
    size_penalty(quantizers, [1] * len(quantizers), cfg).backward()
    assert all(quantizer.log_steps.grad > 0 for quantizer in quantizers)  # above target: fewer levels


def test_a_weight_exactly_zero_gets_no_gradient_and_stays_zero():
    weight = torch.nn.Parameter(torch.tensor([[0.0, 0.5, -0.3], [0.2, 0.0, 0.9]]))
    quantizer = LearnedWidthWeight(weight, 3.0, 8)
    (quantizer(weight) * torch.arange(6.0).reshape(2, 3)).sum().backward()
    assert weight.grad[0, 0] == 0 and weight.grad[1, 1] == 0 and weight.grad[0, 1] != 0
    with torch.no_grad():
        weight.add_(0.4)  # whatever the optimizer does to the pruned entries
        assert quantizer(weight)[0, 0] == 0 and quantizer(weight)[1, 1] == 0


def test_frozen_model_computes_what_was_trained(digits, trained_mlp):
    module, quantizers = with_learned_widths(trained_mlp.module, init_bits=3.3)
    x = torch.as_tensor(digits.X_test)
    with torch.no_grad():
        trained = module(x)
    freeze_fake_quantizers(module)
    for (_, layer), quantizer in zip(quantizable_layers(module), quantizers, strict=True):
        frozen = layer.parametrizations["weight"][-1]
        assert isinstance(frozen, CodebookWeight) and frozen.codebook.numel() == quantizer.levels
        assert int(frozen.codes.max()) < quantizer.levels
    with torch.no_grad():
        assert torch.equal(module(x), trained)


@pytest.fixture(scope="module")
def learned(digits, trained_mlp):
    return apply_steps(trained_mlp, digits, ["quantize.learned_bits:target_bits=2.5,penalty=2,learn_epochs=6,"
                                             "finetune_epochs=2,lr=0.003"])


def test_penalty_brings_the_mean_width_to_the_target(trained_mlp, learned):
    layers = quantizable_layers(learned.module)
    counts = [int(torch.count_nonzero(layer.weight)) for _, layer in quantizable_layers(trained_mlp.module)]
    widths = [math.log2(layer.parametrizations["weight"][-1].codebook.numel()) for _, layer in layers]
    mean = sum(c * w for c, w in zip(counts, widths, strict=True)) / sum(counts)
    assert mean <= 2.5 + 0.5  # rounding each layer's range to whole levels can overshoot by under a level
    assert mean < 4.0 - 0.5  # came down from the initial 4 bits
    assert set(packed_bits(learned.module).values()) <= {2, 3}


def test_learned_widths_keep_accuracy(digits, trained_mlp, learned):
    assert accuracy(learned.module, digits) >= accuracy(trained_mlp.module, digits) - 0.05


def test_pruned_weights_stay_zero_and_the_file_round_trips(tmp_path, digits, trained_mlp):
    pruned = apply_steps(trained_mlp, digits, ["prune.magnitude:sparsity=0.8,finetune_epochs=0"])
    save(pruned, tmp_path / "pruned.wlz")  # loaded back, the zeros are plain weights: no mask holds them
    result = apply_steps(load(tmp_path / "pruned.wlz"), digits,
                         ["quantize.learned_bits:learn_epochs=1,finetune_epochs=1,bias_bits=8"])
    for (_, layer), (_, before) in zip(quantizable_layers(result.module), quantizable_layers(pruned.module),
                                       strict=True):
        assert torch.equal(layer.weight[before.weight == 0], torch.zeros(int((before.weight == 0).sum())))
        assert int(layer.parametrizations["weight"][-1].codes[before.weight == 0].max()) == 0  # code 0 is zero
    save(result, tmp_path / "lb.wlz")
    x = torch.as_tensor(digits.X_test)
    with torch.no_grad():
        assert torch.equal(load(tmp_path / "lb.wlz").module(x), result.module(x))


@pytest.mark.parametrize("fields, message", [
    ({"target_bits": 1.0}, "target_bits"), ({"max_bits": 3, "init_bits": 4.0}, "max_bits"),
    ({"penalty": -1}, "penalty"), ({"learn_epochs": 0}, "learn_epochs"), ({"bits": 4}, "bits"),
])
def test_bad_config_is_one_clear_error(fields, message):
    with pytest.raises(ConfigError, match=message):
        make_config("quantize.learned_bits", fields)
