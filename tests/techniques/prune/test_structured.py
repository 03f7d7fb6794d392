"""Structured pruning: the model physically shrinks, coupled layers stay consistent, the output layer keeps
its size, the edit survives save/load and ONNX export, and each importance criterion ranks as it should."""

import numpy as np
import pytest
import torch
from torch import nn

import wattless
from wattless.api import apply_steps
from wattless.data import Dataset
from wattless.deploy import OnnxModel, export_onnx
from wattless.errors import ConfigError
from wattless.io import load, save
from wattless.measurement import count_macs, count_params
from wattless.models import build_model
from wattless.structure import edits_of, replay_edits
from wattless.techniques import Context, parse_step
from wattless.techniques.prune.channel_importance import greedy_removal_order
from wattless.techniques.prune.structured import StructuredPruneConfig, prune_structured


def synthetic(name, X, y, classes):
    """A Dataset whose three splits are the same arrays (enough for pruning mechanics)."""
    return Dataset(name, "classification", X, y, X, y, X, y, classes=classes)


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(128, 1, 16, 16)).astype(np.float32)
    return synthetic("images", X, rng.integers(0, 10, 128), [str(c) for c in range(10)])


@pytest.fixture(scope="module")
def lenet300(digits):
    return wattless.train("lenet300", digits, epochs=2, lr=1e-2, seed=0)


@pytest.fixture(scope="module")
def lenet5(images):
    return wattless.train("lenet5", images, epochs=1, seed=0)


def weight_shapes(module):
    return [tuple(m.weight.shape) for m in module.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]


def test_lenet300_halves_its_hidden_layers_and_keeps_its_output_layer(digits, lenet300):
    pruned = apply_steps(lenet300, digits, ["prune.structured:ratio=0.5,finetune_epochs=0"])
    assert weight_shapes(pruned.module) == [(150, 64), (50, 150), (10, 50)]
    assert weight_shapes(lenet300.module) == [(300, 64), (100, 300), (10, 100)]  # the input model is untouched
    assert count_params(pruned.module)[0] == 150 * 65 + 50 * 151 + 10 * 51
    assert count_macs(pruned.module, (64,))["total"] == 64 * 150 + 150 * 50 + 50 * 10
    assert count_macs(lenet300.module, (64,))["total"] == 64 * 300 + 300 * 100 + 100 * 10


def test_lenet5_halves_its_filters_through_the_flatten(images, lenet5):
    pruned = apply_steps(lenet5, images, ["prune.structured:ratio=0.5,finetune_epochs=0"])
    # conv2's 8 remaining filters feed the first Linear through a flatten of 8 x 2 x 2 features
    assert weight_shapes(pruned.module) == [(3, 1, 5, 5), (8, 3, 5, 5), (60, 32), (42, 60), (10, 42)]


def test_round_to_and_ignore(digits, lenet300):
    pruned = apply_steps(lenet300, digits, ["prune.structured:ratio=0.5,round_to=16,finetune_epochs=0"])
    assert weight_shapes(pruned.module) == [(144, 64), (48, 144), (10, 48)]
    pruned = apply_steps(lenet300, digits, ["prune.structured:ratio=0.5,ignore=[1],finetune_epochs=0"])
    assert weight_shapes(pruned.module) == [(300, 64), (50, 300), (10, 50)]


@pytest.mark.parametrize("model_name, importance", [("lenet300", "taylor"), ("lenet5", "thinet"), ("lenet5", "l1")])
def test_same_outputs_after_save_load_and_onnx_export(request, tmp_path, model_name, importance):
    model = request.getfixturevalue(model_name)
    data = request.getfixturevalue("digits" if model_name == "lenet300" else "images")
    pruned = apply_steps(model, data, [f"prune.structured:ratio=0.5,importance={importance},finetune_epochs=1"])
    X = data.X_test[:40]
    with torch.no_grad():
        expected = pruned.module.eval()(torch.as_tensor(X)).numpy()
    save(pruned, tmp_path / "p.wlz")
    loaded = load(tmp_path / "p.wlz")
    assert weight_shapes(loaded.module) == weight_shapes(pruned.module)
    with torch.no_grad():
        np.testing.assert_array_equal(loaded.module(torch.as_tensor(X)).numpy(), expected)
    onnx_path = export_onnx(loaded.module, loaded.input_shape, tmp_path / "p.onnx")
    np.testing.assert_allclose(OnnxModel(onnx_path).predict(X), expected, rtol=1e-4, atol=1e-5)


class ResidualNet(nn.Module):
    """conv-BN stem, one residual block of two conv-BN layers, global pooling, Linear head."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.body = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                  nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8))
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))

    def forward(self, x):
        h = self.stem(x)
        return self.head(torch.relu(h + self.body(h)))


@pytest.mark.parametrize("importance", ["l1", "taylor", "thinet"])
def test_batchnorm_and_residual_partners_stay_consistent(images, importance):
    model = ResidualNet().eval()
    with torch.no_grad():  # tell the BatchNorms apart: the residual sum couples stem[1] and body[4]
        model.stem[1].weight.copy_(torch.arange(8.0) + 1)
        model.body[4].weight.copy_(torch.arange(8.0) + 101)
    cfg = StructuredPruneConfig(importance=importance, finetune_epochs=0)
    pruned = prune_structured(model, cfg, Context(dataset=images))
    assert weight_shapes(pruned) == [(4, 1, 3, 3), (4, 4, 3, 3), (4, 4, 3, 3), (10, 4)]
    assert [bn.num_features for bn in (pruned.stem[1], pruned.body[1], pruned.body[4])] == [4, 4, 4]
    assert torch.equal(pruned.stem[1].weight - 1, pruned.body[4].weight - 101)  # the same channels went
    assert pruned(torch.as_tensor(images.X_test[:2])).shape == (2, 10)


def test_replay_works_on_the_meta_device_and_refuses_a_corrupt_history(digits, lenet300):
    pruned = apply_steps(lenet300, digits, ["prune.structured:ratio=0.5,finetune_epochs=0"])
    (edit,) = edits_of(pruned.module)
    assert edit["input_shape"] == [64]
    with torch.device("meta"):
        skeleton = build_model(lenet300.spec)
    replay_edits(skeleton, [edit])
    assert weight_shapes(skeleton) == [(150, 64), (50, 150), (10, 50)]
    assert skeleton[1].weight.device.type == "meta"
    for history in ([["nowhere", True, [0]]], [["1", True, [999]]], [["1", True, list(range(300))]], "1"):
        with pytest.raises(ValueError):
            replay_edits(build_model(lenet300.spec), [{**edit, "history": history}])
    with pytest.raises(ValueError):
        replay_edits(build_model(lenet300.spec), [{**edit, "input_shape": [10**9]}])


def constructed_example():
    """3 -> 3 -> 2 network where each criterion removes a different hidden unit:

    unit 0 has the smallest filter (L1 removes it) but drives the prediction; unit 1 adds the same
    value to both logits, so the loss ignores it (Taylor removes it) although it dominates the outputs;
    unit 2 barely reaches the outputs (ThiNet removes it).
    """
    model = nn.Sequential(nn.Linear(3, 3), nn.ReLU(), nn.Linear(3, 2))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[0.1] * 3, [1.0] * 3, [1.0] * 3]))
        model[0].bias.zero_()
        model[2].weight.copy_(torch.tensor([[1.0, 5.0, 0.01], [-1.0, 5.0, -0.01]]))
        model[2].bias.zero_()
    X = np.random.default_rng(0).uniform(0.5, 1.5, size=(64, 3)).astype(np.float32)
    return model, synthetic("constructed", X, np.ones(64, dtype=np.int64), ["a", "b"])


@pytest.mark.parametrize("importance, removed_unit", [("l1", 0), ("taylor", 1), ("thinet", 2)])
def test_each_criterion_removes_the_unit_it_should(importance, removed_unit):
    model, data = constructed_example()
    rows = model[0].weight.detach().clone()
    cfg = StructuredPruneConfig(ratio=0.34, importance=importance, finetune_epochs=0)
    pruned = prune_structured(model, cfg, Context(dataset=data))
    kept = [unit for unit in range(3) if unit != removed_unit]
    assert torch.equal(pruned[0].weight, rows[kept])
    assert pruned[2].weight.shape == (2, 2)  # the output layer keeps its two outputs


def test_greedy_removal_takes_channels_that_cancel_out():
    # channel 1 is larger than channel 2, but removed together with channel 0 it cancels out (error 0.25, not 8.84)
    contributions = torch.tensor([[2.0, 0.0], [-2.5, 0.0], [0.0, 2.2]])
    assert greedy_removal_order(contributions) == [0, 1, 2]


@pytest.mark.parametrize("step, message", [
    ("prune.structured:ratio=1.0", "ratio"),
    ("prune.structured:ratio=0.0", "ratio"),
    ("prune.structured:importance=random", "importance"),
])
def test_bad_configs_are_refused(step, message):
    with pytest.raises(ConfigError, match=message):
        parse_step(step)


def test_removing_a_whole_layer_is_refused(images, lenet5):
    with pytest.raises(ConfigError, match="remove all 6 channels of layer 'features.0'"):
        apply_steps(lenet5, images, ["prune.structured:ratio=0.95,finetune_epochs=0"])
    with pytest.raises(ConfigError, match="round_to=8 would remove all 6 channels of layer 'features.0'"):
        apply_steps(lenet5, images, ["prune.structured:ratio=0.5,round_to=8,finetune_epochs=0"])
    with pytest.raises(ConfigError, match="unknown layers.*'conv9'"):
        apply_steps(lenet5, images, ["prune.structured:ignore=[conv9],finetune_epochs=0"])


class ChannelScale(nn.Module):
    """A custom layer with weights of its own (a Torch-Pruning "unwrapped parameter")."""

    def __init__(self, channels):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(channels))

    def forward(self, x):
        return x * self.scale


class FixedReshape(nn.Module):
    """Code that fixes a width the dependency graph cannot see, as attention code fixes its head count."""

    def forward(self, x):
        return x.reshape(x.shape[0], 4, 4).flatten(1)


def test_weights_a_module_holds_itself_narrow_with_its_channels(digits):
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), ChannelScale(16), nn.ReLU(), nn.Linear(16, 10))
    narrowed = prune_structured(model, StructuredPruneConfig(finetune_epochs=0), Context(dataset=digits))
    assert narrowed[2].scale.shape == (8,) and narrowed[1].out_features == 8 and narrowed[4].in_features == 8
    assert narrowed(torch.zeros(2, 64)).shape == (2, 10)
    assert model[1].out_features == 16  # the original is left as it was


def test_a_model_whose_code_breaks_when_narrowed_is_refused_and_left_whole(digits):
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), FixedReshape(), nn.Linear(16, 10))
    with pytest.raises(ConfigError, match=r"model's own code no longer runs \(RuntimeError: .*use prune.magnitude"):
        prune_structured(model, StructuredPruneConfig(finetune_epochs=0), Context(dataset=digits))
    assert model[1].out_features == 16 and model(torch.zeros(1, 64)).shape == (1, 10)


def test_parametrized_layers_are_refused(digits, lenet300):
    masked = apply_steps(lenet300, digits, ["prune.magnitude:sparsity=0.5,finetune_epochs=0"])
    with pytest.raises(ConfigError, match="layer '1'.*first in the recipe"):
        apply_steps(masked, digits, ["prune.structured:finetune_epochs=0"])


class BagOfTokens(nn.Module):
    """Token ids -> embedding -> mean -> Linear: the embedding's width starts the only channel group."""

    def __init__(self):
        super().__init__()
        self.embed, self.head = nn.Embedding(20, 16), nn.Linear(16, 2)

    def forward(self, tokens):
        return self.head(self.embed(tokens.long()).mean(dim=1))


def test_an_embeddings_width_is_narrowed_and_replays_on_a_fresh_model():
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 20, (60, 5)).astype(np.float32)
    data = wattless.Dataset.from_arrays(tokens, (tokens[:, 0] > 9).astype(np.int64))
    torch.manual_seed(0)
    model = BagOfTokens()
    narrowed = prune_structured(model, StructuredPruneConfig(finetune_epochs=0), Context(dataset=data))
    assert narrowed.embed.embedding_dim == 8 and narrowed.head.in_features == 8 and model.embed.embedding_dim == 16
    fresh = BagOfTokens()
    replay_edits(fresh, edits_of(narrowed))
    fresh.load_state_dict(narrowed.state_dict())
    x = torch.from_numpy(tokens[:4])
    assert torch.equal(fresh(x), narrowed(x))
