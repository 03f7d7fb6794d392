"""Fake-quantization building blocks: exact straight-through values, gradients, grids, freezing, input quantizers."""

import math

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from wattless.packed import AffineWeight
from wattless.techniques.quantize._fake import (
    ActivationQuantizer,
    BinaryWeight,
    TernaryWeight,
    UniformWeight,
    attach_input_quantizer,
    freeze_fake_quantizers,
    reattach_activation_quantizers,
    round_ste,
    straight_through,
)


@pytest.fixture
def weight():
    return torch.randn(6, 5, 3, generator=torch.Generator().manual_seed(0)) * 0.2


def quantizers(weight):
    return {
        "ste-channel": UniformWeight(weight, 3, learned_step=False, per_channel=True),
        "ste-tensor": UniformWeight(weight, 4, learned_step=False, per_channel=False),
        "lsq-channel": UniformWeight(weight, 2, learned_step=True, per_channel=True),
        "lsq-tensor": UniformWeight(weight, 5, learned_step=True, per_channel=False),
        "binary": BinaryWeight(),
        "ternary": TernaryWeight(),
    }


def test_straight_through_is_exact_forward_and_identity_backward():
    x = torch.tensor([-1.5, -0.5, 0.49, 0.5, 2.5, 7.3], requires_grad=True)
    y = round_ste(x)
    assert torch.equal(y, x.detach().round())  # ties to even, no float residue
    y.sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))
    hard = torch.tensor([3.0])
    assert straight_through(hard, torch.tensor([1.0])) is hard  # nothing to differentiate: no extra ops


@pytest.mark.parametrize("name", ["ste-channel", "ste-tensor", "lsq-channel", "lsq-tensor", "binary", "ternary"])
def test_codes_fit_the_bits_and_freezing_reproduces_the_forward(weight, name):
    quantizer = quantizers(weight)[name]
    codes, _, _ = quantizer.affine(weight)
    assert torch.equal(codes, codes.round()) and codes.min() >= 0 and codes.max() < 2**quantizer.bits
    frozen = quantizer.frozen(weight)
    assert isinstance(frozen, AffineWeight) and frozen.bits == quantizer.bits
    assert torch.equal(frozen(weight), quantizer(weight))
    for channel in quantizer(weight):
        assert channel.unique().numel() <= 2**quantizer.bits


def test_freezing_a_layer_keeps_its_outputs_and_earlier_parametrizations(weight):
    layer = nn.Conv1d(5, 6, 3)
    with torch.no_grad():
        layer.weight.copy_(weight)
    parametrize.register_parametrization(layer, "weight", _HalfMask())
    parametrize.register_parametrization(layer, "weight", UniformWeight(layer.weight, 3, learned_step=True,
                                                                        per_channel=True))
    x = torch.randn(2, 5, 8)
    with torch.no_grad():
        before = layer(x)
    freeze_fake_quantizers(layer)
    chain = layer.parametrizations["weight"]
    assert isinstance(chain[0], _HalfMask) and isinstance(chain[-1], AffineWeight)
    with torch.no_grad():
        assert torch.equal(layer(x), before)
    assert (layer.weight[:3] == 0).all()  # masked weights stay exactly zero


class _HalfMask(nn.Module):
    def forward(self, w):
        return torch.cat([torch.zeros_like(w[:3]), w[3:]])


def test_ste_gradient_reaches_the_weight_and_is_zero_where_clipped(weight):
    w = weight.clone().requires_grad_(True)
    UniformWeight(w, 3, learned_step=False, per_channel=True)(w).sum().backward()
    assert torch.equal(w.grad, torch.ones_like(w))  # max-based step: nothing is clipped
    lsq = UniformWeight(weight, 3, learned_step=True, per_channel=False)
    with torch.no_grad():
        lsq.step.fill_(0.02)  # clip range [-4, 3] * 0.02
    w.grad = None
    lsq(w).sum().backward()
    inside = (w / 0.02 >= -4) & (w / 0.02 <= 3)
    assert 0 < inside.sum() < w.numel()
    assert torch.equal(w.grad, inside.float())


def test_lsq_step_starts_as_in_the_paper_and_gets_a_scaled_gradient(weight):
    bits, qp = 4, 7
    lsq = UniformWeight(weight, bits, learned_step=True, per_channel=True)
    expected = 2 * weight.abs().flatten(1).mean(1) / math.sqrt(qp)
    assert torch.allclose(lsq.step.detach(), expected)
    assert lsq.grad_scale == pytest.approx(1 / math.sqrt(weight[0].numel() * qp))
    lsq(weight).pow(2).sum().backward()
    assert lsq.step.grad is not None and (lsq.step.grad != 0).all()
    optimizer = torch.optim.Adam(lsq.parameters(), lr=1e-2)
    before = lsq.step.detach().clone()
    optimizer.step()
    assert not torch.equal(lsq.step.detach(), before)


def test_binary_is_sign_times_mean_magnitude_per_channel(weight):
    out = BinaryWeight()(weight)
    alpha = weight.abs().flatten(1).mean(1).reshape(-1, 1, 1)
    assert torch.allclose(out, torch.where(weight >= 0, alpha, -alpha))
    assert all(channel.unique().numel() == 2 for channel in out)


def test_ternary_uses_the_twn_threshold_and_scale(weight):
    out = TernaryWeight()(weight)
    for w, t in zip(weight, out, strict=True):
        delta = 0.7 * w.abs().mean()
        alpha = w.abs()[w.abs() > delta].mean()
        expected = torch.where(w > delta, alpha, torch.where(w < -delta, -alpha, torch.zeros(())))
        assert torch.allclose(t, expected)
        assert 0.0 in t.unique().tolist() and t.unique().numel() <= 3


@pytest.mark.parametrize("bits, symmetric", [(2, False), (3, True), (8, False)])
def test_activation_quantizer_grid_and_clipped_gradient(bits, symmetric):
    quantizer = ActivationQuantizer(bits, symmetric=symmetric)
    quantizer.set_range(-1.0, 2.0)
    x = torch.linspace(-3, 4, 2001, requires_grad=True)
    y = quantizer(x)
    assert y.detach().unique().numel() <= 2**bits
    low, high = quantizer.calibrated_range()
    lowest = low - float(quantizer.scale) if symmetric else low  # the extra level of a signed grid
    assert float(y.detach().min()) == pytest.approx(lowest) and float(y.detach().max()) == pytest.approx(high)
    assert low <= (-2.0 if symmetric else -1.0) + 1e-6 and high >= 2.0 - 1e-6
    y.sum().backward()
    assert (x.grad[(x < lowest - quantizer.scale) | (x > high + quantizer.scale)] == 0).all()
    assert (x.grad[(x > lowest + quantizer.scale) & (x < high - quantizer.scale)] == 1).all()


def test_activation_range_holds_zero_and_tracks_batches_only_when_asked():
    quantizer = ActivationQuantizer(8)
    quantizer.set_range(0.5, 1.0)  # widened to hold zero exactly
    assert quantizer.calibrated_range()[0] == 0.0
    quantizer(torch.full((4,), 10.0))  # no momentum: the range stays
    assert quantizer.calibrated_range()[1] == pytest.approx(1.0)
    tracking = ActivationQuantizer(8, momentum=0.5)
    tracking.set_range(0.0, 1.0)
    tracking(torch.full((4,), 3.0))
    assert tracking.calibrated_range()[1] == pytest.approx(2.0, rel=1e-2)
    tracking.eval()(torch.full((4,), 100.0))  # eval mode never moves it
    assert tracking.calibrated_range()[1] == pytest.approx(2.0, rel=1e-2)


def test_reattach_finds_every_layer_with_saved_input_quantizer_buffers():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    attach_input_quantizer(model[2], ActivationQuantizer(4))
    attach_input_quantizer(model[2], ActivationQuantizer(4))  # replacing it adds no second hook
    assert len(model[2]._forward_pre_hooks) == 1
    state = model.state_dict()
    assert {"2.input_quant.scale", "2.input_quant.zero_point", "2.input_quant.bits"} <= state.keys()
    fresh = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    reattach_activation_quantizers(fresh, state)
    fresh.load_state_dict(state)
    assert int(fresh[2].input_quant.bits) == 4 and not hasattr(fresh[0], "input_quant")
    x = torch.randn(5, 3)
    assert torch.equal(fresh(x), model(x))
    root = nn.Linear(3, 2)
    reattach_activation_quantizers(root, {"input_quant.scale": torch.tensor(1.0)})
    assert isinstance(root.input_quant, ActivationQuantizer)
