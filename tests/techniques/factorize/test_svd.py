"""SVD factorization of Linear layers: exact at full rank, the rank each rule asks for, fewer parameters
and MACs, layers that would not shrink left alone, and one clear error per bad config."""

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from wattless.api import apply_steps
from wattless.errors import ConfigError
from wattless.measurement import count_macs, count_params
from wattless.structure import edits_of
from wattless.techniques import Context, make_config, parse_step
from wattless.techniques.factorize.svd import factorize_svd, svd_linear, svd_rank


@pytest.mark.parametrize("in_features, out_features", [(20, 12), (12, 20), (16, 16)])
def test_full_rank_reproduces_the_layer(in_features, out_features):
    torch.manual_seed(0)
    linear = nn.Linear(in_features, out_features)
    x = torch.randn(8, in_features)
    factors = svd_linear(linear, min(in_features, out_features))
    with torch.no_grad():
        assert torch.allclose(factors(x), linear(x), atol=1e-5)
    assert [tuple(layer.weight.shape) for layer in factors] == [(min(in_features, out_features), in_features),
                                                                (out_features, min(in_features, out_features))]
    assert factors[0].bias is None and torch.equal(factors[1].bias, linear.bias)


def matrix_with_singular_values(values, size=40):
    """A size x size matrix whose singular values are ``values`` then zeros."""
    generator = torch.Generator().manual_seed(0)
    left, _ = torch.linalg.qr(torch.randn(size, size, generator=generator, dtype=torch.float64))
    right, _ = torch.linalg.qr(torch.randn(size, size, generator=generator, dtype=torch.float64))
    singular = torch.zeros(size, dtype=torch.float64)
    singular[:len(values)] = torch.tensor(values, dtype=torch.float64)
    return (left * singular) @ right.T


@pytest.mark.parametrize("rule, expected", [
    ("energy=0.5", 1), ("energy=0.84", 3), ("energy=0.83", 2), ("energy=1.0", 4),  # squares 16, 9, 4, 1 of 30
    ("ratio=0.1", 4), ("ratio=0.01", 1), ("rank=7", 7),
])
def test_each_rank_rule_gives_the_expected_rank(rule, expected):
    linear = nn.Linear(40, 40)
    with torch.no_grad():
        linear.weight.copy_(matrix_with_singular_values([4.0, 3.0, 2.0, 1.0]))
    model = nn.Sequential(linear, nn.ReLU(), nn.Linear(40, 2))
    cfg = parse_step(f"factorize.svd:{rule},finetune_epochs=0")[1]
    assert svd_rank(torch.linalg.svdvals(linear.weight.detach()), cfg) == expected
    factorize_svd(model, cfg, Context(dataset=None))
    assert edits_of(model) == [{"kind": "factorize.svd", "layer": "0", "rank": expected}]
    product = model[0][1].weight @ model[0][0].weight
    assert torch.linalg.matrix_rank(product) == min(expected, 4)
    assert torch.allclose(product.double(), linear.weight.double(), atol=1e-5) == (expected >= 4)


def test_parameters_and_macs_go_down_and_the_output_layer_stays(digits, trained_mlp):
    factorized = apply_steps(trained_mlp, digits, ["factorize.svd:rank=8,finetune_epochs=0"])
    assert isinstance(factorized.module[3], nn.Linear)  # the output layer is left as it is by default
    assert count_params(factorized.module)[0] == 8 * (64 + 32) + 32 + 32 * 10 + 10
    assert count_macs(factorized.module, (64,))["total"] == 8 * (64 + 32) + 32 * 10
    assert count_macs(trained_mlp.module, (64,))["total"] == 64 * 32 + 32 * 10


def test_a_rank_that_saves_nothing_is_refused_and_leaves_the_model_as_it_was(digits, trained_mlp):
    before = {name: value.clone() for name, value in trained_mlp.module.state_dict().items()}
    with pytest.raises(ConfigError, match=r"no layer would shrink at rank=22.*\(1\); ask for lower ranks"):
        apply_steps(trained_mlp, digits, ["factorize.svd:rank=22,finetune_epochs=2"])  # 22 * 96 >= 64 * 32
    assert edits_of(trained_mlp.module) == []
    assert all(torch.equal(before[name], value) for name, value in trained_mlp.module.state_dict().items())


def test_fine_tuning_trains_the_factors(digits, trained_mlp):
    steps = "factorize.svd:rank=4,lr=0.01,finetune_epochs={}"
    plain, tuned = (apply_steps(trained_mlp, digits, [steps.format(epochs)]) for epochs in (0, 2))
    assert not torch.equal(plain.module[1][0].weight, tuned.module[1][0].weight)


@pytest.mark.parametrize("step, message", [
    ("factorize.svd:rank=40", "rank 40 is larger than layer '1' allows.*at most 32"),
    ("factorize.svd:rank=4,ratio=0.5", "exactly one of energy, ratio, rank; got ratio, rank"),
    ("factorize.svd:energy=0.5,rank=4", "exactly one.*got energy, rank"),
    ("factorize.svd:energy=null", "exactly one.*got none"),
    ("factorize.svd:energy=1.5", "energy"),
    ("factorize.svd:layers=[2]", r"layer '2' is a ReLU; this technique factorizes Linear layers: \['1', '3'\]"),
    ("factorize.svd:layers=[conv9]", "layer 'conv9' is not in the model"),
])
def test_bad_configs_raise_one_clear_error(digits, trained_mlp, step, message):
    with pytest.raises(ConfigError, match=message):
        apply_steps(trained_mlp, digits, [step])


def test_a_parametrized_layer_is_refused():
    model = nn.Sequential(nn.Linear(8, 8), nn.Linear(8, 2))
    parametrize.register_parametrization(model[0], "weight", nn.Identity())  # as a pruning mask or quantizer
    with pytest.raises(ConfigError, match="layer '0' is already pruned or quantized; factorize before"):
        factorize_svd(model, make_config("factorize.svd"), Context(dataset=None))


def test_the_default_rule_is_energy():
    assert make_config("factorize.svd").energy == 0.9
    assert make_config("factorize.svd", {"ratio": 0.5}).energy is None


class ReadsItsWeight(nn.Module):
    """Code that uses a layer as a layer, as Hugging Face's ViT reads ``projection.weight.dtype``."""

    def __init__(self):
        super().__init__()
        self.first, self.second, self.head = nn.Linear(64, 48), nn.Linear(48, 48), nn.Linear(48, 10)

    def forward(self, x):
        x = torch.relu(self.first(x.to(self.first.weight.dtype)))
        return self.head(torch.relu(self.second(x)))


def test_a_layer_the_models_code_reads_is_kept_whole_with_a_warning(digits):
    model = ReadsItsWeight()
    cfg = parse_step("factorize.svd:rank=4,finetune_epochs=0")[1]
    with pytest.warns(UserWarning, match=r"kept 1 layer\(s\) whole.*first \(AttributeError"):
        factorize_svd(model, cfg, Context(dataset=digits))
    assert isinstance(model.first, nn.Linear) and [e["layer"] for e in edits_of(model)] == ["second"]
    only_first = parse_step("factorize.svd:rank=4,layers=[first],finetune_epochs=0")[1]
    with pytest.raises(ConfigError, match="no layer can be factorized: the model stops working"):
        factorize_svd(ReadsItsWeight(), only_first, Context(dataset=digits))


def test_a_model_whose_only_linear_layer_is_the_output_is_told_how_to_name_it(digits):
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    with pytest.raises(ConfigError, match=r"only Linear layers \(1\) produce its outputs.*layers=\[\.\.\.\]"):
        factorize_svd(model, parse_step("factorize.svd:rank=2")[1], Context(dataset=digits))
