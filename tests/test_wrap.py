"""Any nn.Module from Python: wrapped with its input shape, task and output adapter, compressed, measured and
exported in memory; saved as .wlz only when its class can be imported again with the constructor arguments given."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
import torch
from torch import nn

import wattless
from wattless.errors import ConfigError, ModelError

USER_PACKAGE = '''
import torch
from torch import nn


class TwoBranch(nn.Module):
    """Concat of two branches, a skip connection and a dict output, as user code often has."""

    def __init__(self, features=64, hidden=16, classes=10):
        super().__init__()
        self.left, self.right = nn.Linear(features, hidden), nn.Linear(features, hidden)
        self.head = nn.Linear(2 * hidden, classes)

    def forward(self, x):
        both = torch.cat([torch.relu(self.left(x)), torch.relu(self.right(x))], dim=1)
        return {"logits": self.head(both + both.flip(1))}
'''


@pytest.fixture()
def user_package(tmp_path, monkeypatch):
    (tmp_path / "userpkg.py").write_text(textwrap.dedent(USER_PACKAGE))
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib

    return importlib.import_module("userpkg")


def sequential():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))


def test_a_module_in_memory_is_compressed_measured_and_exported(digits, tmp_path):
    net = sequential()
    result = wattless.compress(net, digits, tmp_path / "small.onnx", steps=["prune.magnitude:sparsity=0.5"],
                               int8=True, batches="1", repeats=3)
    assert result.record["size_bytes"] == (tmp_path / "small.onnx").stat().st_size
    assert result.baseline["params"] == sum(p.numel() for p in net.parameters())
    record = wattless.measure(net, digits, engines="torch", batches="1", repeats=3)
    logits = net(torch.from_numpy(digits.X_test)).argmax(1).numpy()
    assert record["accuracy"] == pytest.approx(float(np.mean(logits == digits.y_test)))
    assert wattless.export(wattless.wrap(net, dataset=digits), tmp_path / "m.onnx").is_file()


def test_a_module_in_memory_is_inspected_layer_by_layer_with_the_bytes_its_file_would_take(digits):
    net = sequential()
    info = wattless.inspect(net, dataset=digits)
    assert info["file"] is None and info["params"] == 64 * 32 + 32 + 32 * 10 + 10
    assert [layer["name"] for layer in info["layers"]] == ["0", "2"]
    assert 0 < sum(layer["bytes"] for layer in info["layers"]) < info["size_bytes"]
    pruned = wattless.apply_steps(net, digits, ["prune.magnitude:sparsity=0.5,finetune_epochs=0"])
    assert wattless.inspect(pruned)["nonzero_params"] < info["params"] * 0.6
    with pytest.raises(ConfigError, match="a plain nn.Module needs dataset="):
        wattless.inspect(net)


def test_a_class_no_file_can_rebuild_is_refused_as_wlz_before_any_work(digits, tmp_path):
    model = wattless.wrap(sequential(), dataset=digits)
    assert model.name == "memory:torch.nn.modules.container.Sequential"
    with pytest.raises(ModelError, match="cannot be saved as .wlz: Sequential.*export it instead"):
        wattless.compress(model, digits, tmp_path / "x.wlz", steps=["prune.magnitude:sparsity=0.5"])
    assert not (tmp_path / "x.wlz").exists()
    with pytest.raises(ModelError, match="cannot be saved as .wlz"):
        wattless.save(model, tmp_path / "x.wlz")


def test_an_importable_class_round_trips_through_wlz_with_its_init(user_package, digits, tmp_path):
    net = user_package.TwoBranch(hidden=8)
    model = wattless.wrap(net, torch.from_numpy(digits.X_train[:4]), dataset=digits, init={"hidden": 8})
    assert model.spec["name"] == "userpkg:TwoBranch" and model.spec["output"] == "logits"
    wattless.save(model, tmp_path / "m.wlz")
    with pytest.raises(wattless.WattlessError, match="trust-code"):
        wattless.load(tmp_path / "m.wlz")
    loaded = wattless.load(tmp_path / "m.wlz", trust_code=True)
    x = torch.from_numpy(digits.X_test[:5])
    assert torch.allclose(loaded.module(x), net(x)["logits"])
    pruned = wattless.compress(tmp_path / "m.wlz", digits, tmp_path / "p.wlz", steps=["prune.magnitude:sparsity=0.5"],
                               trust_code=True, batches="1", repeats=3)
    assert pruned.record["nonzero_params"] < pruned.baseline["nonzero_params"]


def test_init_that_builds_another_model_is_one_error(user_package, digits):
    with pytest.raises(ModelError, match=r"TwoBranch\(\*\*init\) builds a model with other weights"):
        wattless.wrap(user_package.TwoBranch(hidden=8), dataset=digits, init={"hidden": 9})
    assert wattless.wrap(user_package.TwoBranch(hidden=8), dataset=digits).spec["unsaved"].endswith("init={...}")


def test_bad_modules_are_one_error(digits):
    with pytest.raises(ModelError, match=r"forward fails on an input of shape \[1, 64\]: RuntimeError: .*"):
        wattless.wrap(nn.Linear(10, 3), dataset=digits)
    with pytest.raises(ModelError, match="gives 3 outputs per sample but data set 'digits' has 10 classes"):
        wattless.wrap(nn.Linear(64, 3), dataset=digits)
    with pytest.raises(ModelError, match="needs the input's shape"):
        wattless.wrap(nn.Linear(64, 3))
    with pytest.raises(ConfigError, match="a plain nn.Module needs dataset="):
        wattless.measure(nn.Linear(64, 10))
    assert wattless.wrap(nn.Linear(64, 1), input_shape=(64,)).task == "regression"
