"""CP factorization of Conv2d layers: a kernel of CP rank R is recovered at rank R for any stride, padding
and dilation, the error falls as the rank grows, the ratio rule, and one clear error per bad config."""

import pytest
import torch
from torch import nn

from wattless.api import apply_steps
from wattless.errors import ConfigError
from wattless.measurement import count_params
from wattless.structure import edits_of
from wattless.techniques.factorize.cp import cp_conv
from wattless.techniques.factorize.tucker import tucker2_conv


def conv_of_cp_rank(rank, **options):
    """A Conv2d whose kernel is a sum of ``rank`` outer products."""
    torch.manual_seed(0)
    conv = nn.Conv2d(**options)
    factors = [torch.randn(size, rank) for size in conv.weight.shape]
    with torch.no_grad():
        conv.weight.copy_(torch.einsum("or,ir,hr,wr->oihw", *factors))
    return conv


@pytest.mark.parametrize("options", [
    dict(in_channels=6, out_channels=16, kernel_size=5, padding=2),
    dict(in_channels=4, out_channels=8, kernel_size=3, stride=2, padding=1, dilation=2, padding_mode="reflect"),
    dict(in_channels=3, out_channels=5, kernel_size=(3, 2), stride=(1, 2), padding=(1, 0), bias=False),
])
def test_a_kernel_of_cp_rank_r_is_reproduced_at_rank_r(options):
    conv = conv_of_cp_rank(3, **options)
    x = torch.randn(2, conv.in_channels, 11, 13)
    factors = cp_conv(conv, 3)
    with torch.no_grad():
        expected = conv(x)
        assert torch.allclose(factors(x), expected, atol=1e-4 * expected.abs().max())
    assert [m.groups for m in factors] == [1, 3, 3, 1]
    assert [m.kernel_size for m in factors] == [(1, 1), (conv.kernel_size[0], 1), (1, conv.kernel_size[1]), (1, 1)]


def test_the_error_falls_as_the_rank_grows():
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 8, 3)
    x = torch.randn(4, 4, 10, 10)
    with torch.no_grad():
        errors = [float((cp_conv(conv, rank)(x) - conv(x)).norm() / conv(x).norm()) for rank in (2, 8, 24)]
    assert errors == sorted(errors, reverse=True) and errors[-1] < 0.5 * errors[0]


def test_ratio_rule_and_fewer_parameters(digit_images, lenet5):
    factorized = apply_steps(lenet5, digit_images, ["factorize.cp:ratio=0.5,finetune_epochs=0"])
    assert edits_of(factorized.module) == [{"kind": "factorize.cp", "layer": "features.0", "rank": 3},
                                           {"kind": "factorize.cp", "layer": "features.3", "rank": 8}]
    saved = (6 * 1 * 25 - 3 * (1 + 5 + 5 + 6)) + (16 * 6 * 25 - 8 * (6 + 5 + 5 + 16))
    assert count_params(factorized.module)[0] == count_params(lenet5.module)[0] - saved


def test_cp_and_tucker_refuse_models_without_convolutions(digits, trained_mlp):
    for step in ("factorize.cp", "factorize.tucker"):
        with pytest.raises(ConfigError, match="has no Conv2d"):
            apply_steps(trained_mlp, digits, [step])


def test_cp_is_deterministic():
    conv = nn.Conv2d(6, 16, 5)
    first, second = cp_conv(conv, 5, seed=1), cp_conv(conv, 5, seed=1)
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values(),
                                                 strict=True))


@pytest.mark.parametrize("step, message", [
    ("factorize.cp:rank=151,layers=[features.3]", "rank 151 is larger than layer 'features.3' allows.*at most 150"),
    ("factorize.cp:rank=4,ratio=0.5", "exactly one of ratio, rank; got ratio, rank"),
    ("factorize.cp:ratio=null", "exactly one of ratio, rank; got none"),
    ("factorize.cp:ratio=0", "ratio"),
])
def test_bad_configs_raise_one_clear_error(digit_images, lenet5, step, message):
    with pytest.raises(ConfigError, match=message):
        apply_steps(lenet5, digit_images, [step])


def test_tucker_at_full_ranks_matches_cp_at_a_high_rank_on_the_same_layer():
    conv = conv_of_cp_rank(4, in_channels=3, out_channels=4, kernel_size=3)
    x = torch.randn(1, 3, 7, 7)
    with torch.no_grad():
        assert torch.allclose(tucker2_conv(conv, 3, 4)(x), cp_conv(conv, 4)(x), atol=1e-3)
