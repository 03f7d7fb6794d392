"""Tucker-2 factorization of Conv2d layers: exact at full ranks for any stride, padding and dilation, the
ranks each rule asks for (VBMF included), fewer MACs, and one clear error per bad config."""

import numpy as np
import pytest
import torch
from torch import nn

from wattless.api import apply_steps
from wattless.errors import ConfigError
from wattless.measurement import count_macs
from wattless.structure import edits_of
from wattless.techniques import Context, parse_step
from wattless.techniques.factorize.tucker import factorize_tucker, tucker2_conv, tucker_ranks

CONVS = [
    dict(in_channels=6, out_channels=16, kernel_size=5, padding=2),
    dict(in_channels=4, out_channels=8, kernel_size=3, stride=2, padding=1, dilation=2, padding_mode="reflect"),
    dict(in_channels=3, out_channels=5, kernel_size=(3, 1), padding="same", bias=False),
]


@pytest.mark.parametrize("options", CONVS)
def test_full_ranks_reproduce_the_layer(options):
    torch.manual_seed(0)
    conv = nn.Conv2d(**options)
    x = torch.randn(2, conv.in_channels, 11, 13)
    factors = tucker2_conv(conv, conv.in_channels, conv.out_channels)
    with torch.no_grad():
        assert torch.allclose(factors(x), conv(x), atol=1e-5)
    assert [m.kernel_size for m in factors] == [(1, 1), conv.kernel_size, (1, 1)]


def test_ratio_halves_both_channel_modes_and_cuts_macs(digit_images, lenet5):
    factorized = apply_steps(lenet5, digit_images, ["factorize.tucker:ratio=0.5,finetune_epochs=0"])
    assert edits_of(factorized.module) == [{"kind": "factorize.tucker", "layer": "features.0", "ranks": [1, 3]},
                                           {"kind": "factorize.tucker", "layer": "features.3", "ranks": [3, 8]}]
    before = {layer["name"]: layer["macs"] for layer in count_macs(lenet5.module, (1, 16, 16))["layers"]}
    after = {layer["name"]: layer["macs"] for layer in count_macs(factorized.module, (1, 16, 16))["layers"]}
    assert before["features.3"] == 6 * 16 * 25 * 4 * 4  # 5x5 conv, 8x8 input, 4x4 output
    assert [after[f"features.3.{i}"] for i in range(3)] == [6 * 3 * 8 * 8, 3 * 8 * 25 * 4 * 4, 8 * 16 * 4 * 4]


def test_vbmf_finds_the_ranks_of_a_low_rank_kernel():
    rng = np.random.default_rng(0)
    core = rng.normal(size=(3, 2, 3, 3))
    kernel = np.einsum("abhw,oa,ib->oihw", core, rng.normal(size=(16, 3)), rng.normal(size=(8, 2)))
    conv = nn.Conv2d(8, 16, 3)
    with torch.no_grad():
        conv.weight.copy_(torch.as_tensor(kernel + 0.01 * rng.normal(size=kernel.shape)))
    assert tucker_ranks(conv, parse_step("factorize.tucker:ranks=vbmf")[1]) == (2, 3)


@pytest.mark.parametrize("step, message", [
    ("factorize.tucker:ranks=[7,8],layers=[features.3]", "rank 7 is larger than layer 'features.3' allows"),
    ("factorize.tucker:ranks=[2,17],layers=[features.3]", "rank 17 is larger.*output channels: at most 16"),
    ("factorize.tucker:ranks=[2,2],ratio=0.5", "exactly one of ratio, ranks"),
    ("factorize.tucker:ranks=[2]", "ranks"),
    ("factorize.tucker:layers=[classifier.1]", "'classifier.1' is a Linear; this technique factorizes Conv2d layers"),
])
def test_bad_configs_raise_one_clear_error(digit_images, lenet5, step, message):
    with pytest.raises(ConfigError, match=message):
        apply_steps(lenet5, digit_images, [step])


def test_grouped_convolutions_are_left_out_by_default_and_refused_by_name(digit_images):
    model = nn.Sequential(nn.Conv2d(4, 4, 3, groups=4), nn.Conv2d(4, 4, 3))
    cfg = parse_step("factorize.tucker:finetune_epochs=0")[1]
    assert [edit["layer"] for edit in edits_of(factorize_tucker(model, cfg, Context(dataset=digit_images)))] == ["1"]
    with pytest.raises(ConfigError, match="'0' is a Conv2d; this technique factorizes Conv2d layers with groups=1"):
        factorize_tucker(model, parse_step("factorize.tucker:layers=[0]")[1], Context(dataset=digit_images))
    with pytest.raises(ConfigError, match="has no Conv2d layers with groups=1 to factorize"):
        factorize_tucker(nn.Sequential(nn.Conv2d(4, 4, 3, groups=4)), cfg, Context(dataset=digit_images))
