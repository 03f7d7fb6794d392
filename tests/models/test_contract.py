"""Registry contract: every registered zoo model, on a tiny input suited to it, runs forward and backward,
survives a save/load round trip and ONNX export with identical outputs, and (where it has one) its regression
head predicts in the target's units. A new model is tested here as soon as it has an entry in TINY."""

import numpy as np
import pytest
import torch
from torch import nn

from wattless.deploy import OnnxModel, export_onnx
from wattless.io import WattlessModel, load, save
from wattless.measurement import count_macs
from wattless.models import build_model, list_models

TINY = {
    "cnn": ((1, 12, 12), {"channels": [4, 8], "hidden": 8}),
    "lenet300": ((1, 8, 8), {}),
    "lenet5": ((1, 12, 12), {}),
    "mlp": ((12,), {"hidden": [16, 8]}),
    "mobilenet": ((3, 8, 8), {"width": 0.125}),
    "resnet18": ((3, 16, 16), {"width": 0.125}),
    "ts_transformer": ((6, 20), {"patch_size": 6, "d_model": 16, "heads": 2}),  # 20 steps: the last patch is padded
}
"""Model name -> (per-sample input shape, options) small enough for a fast test."""
NUM_CLASSES, BATCH = 5, 4
REGRESSION = {"target_mean": 100.0, "target_std": 20.0}
NO_REGRESSION_HEAD: set[str] = set()
"""Models that have no target_mean/target_std options (none so far)."""


def spec(name, num_outputs=NUM_CLASSES, **extra):
    input_shape, kwargs = TINY[name]
    return {"name": name, "kwargs": {**kwargs, **extra}, "input_shape": list(input_shape), "num_outputs": num_outputs}


def built(name, num_outputs=NUM_CLASSES, **extra):
    torch.manual_seed(0)
    return build_model(spec(name, num_outputs, **extra))


def sample(name, batch=BATCH):
    return torch.randn(batch, *TINY[name][0], generator=torch.Generator().manual_seed(1))


def eval_outputs(module, X):
    with torch.no_grad():
        return module.eval()(X)


def test_every_registered_model_has_a_tiny_input():
    missing = sorted(set(list_models()) - set(TINY))
    assert not missing, f"add a tiny (input_shape, kwargs) entry to TINY for {missing}"


@pytest.mark.parametrize("name", list_models())
def test_forward_and_backward(name):
    model = built(name).train()
    out = model(sample(name))
    assert out.shape == (BATCH, NUM_CLASSES)
    assert torch.isfinite(out).all()
    nn.functional.cross_entropy(out, torch.arange(BATCH) % NUM_CLASSES).backward()
    for param_name, param in model.named_parameters():
        assert param.grad is not None, f"{param_name} gets no gradient"
        assert torch.isfinite(param.grad).all(), f"{param_name} has a non-finite gradient"
    assert any(param.grad.abs().sum() > 0 for param in model.parameters())


@pytest.mark.parametrize("name", list_models())
def test_builds_on_meta_without_memory(name):
    with torch.device("meta"):
        model = build_model(spec(name))
    assert all(p.device.type == "meta" for p in model.parameters())


@pytest.mark.parametrize("name", list_models())
def test_outputs_depend_on_the_input_in_eval_mode(name):
    # a fresh model whose eval outputs ignore the input (vanishing activations) cannot be trained or compared
    out = eval_outputs(built(name), sample(name))
    assert out.std(dim=0).min() > 1e-6


@pytest.mark.parametrize("name", list_models())
def test_macs_are_counted_for_every_layer(name):
    macs = count_macs(built(name), TINY[name][0])
    assert macs["total"] > 0
    assert macs["total"] == sum(layer["macs"] for layer in macs["layers"])  # every MAC is attributed to a layer


@pytest.mark.parametrize("task", ["classification", "regression"])
@pytest.mark.parametrize("name", list_models())
def test_save_load_round_trip_gives_identical_outputs(tmp_path, name, task):
    if task == "regression" and name in NO_REGRESSION_HEAD:
        pytest.skip(f"{name} has no regression head")
    model_spec = spec(name, 1, **REGRESSION) if task == "regression" else spec(name)
    torch.manual_seed(0)
    module = build_model(model_spec)
    module.train()(sample(name, 8))  # move the BatchNorm running statistics away from their initial values
    model = WattlessModel(module.eval(), {"model": model_spec, "task": task, "recipe": [], "seed": 0})
    save(model, tmp_path / "m.wlz")
    loaded = load(tmp_path / "m.wlz")
    assert loaded.spec == model_spec
    X = sample(name)
    assert torch.equal(eval_outputs(loaded.module, X), eval_outputs(module, X))


@pytest.mark.parametrize("name", list_models())
def test_onnx_export_runs_in_onnx_runtime_with_the_same_outputs(tmp_path, name):
    module = built(name)
    module.train()(sample(name, 8))
    path = export_onnx(module, TINY[name][0], tmp_path / "m.onnx")
    X = sample(name, 7)
    np.testing.assert_allclose(OnnxModel(path).predict(X.numpy()), eval_outputs(module, X).numpy(),
                               rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", sorted(set(list_models()) - NO_REGRESSION_HEAD))
def test_regression_head_predicts_in_target_units(name):
    model = built(name, 1, **REGRESSION)
    assert model.train()(sample(name)).shape == (BATCH, 1)
    last = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    with torch.no_grad():  # with a zero output layer the standardised prediction is 0, i.e. the target mean
        last.weight.zero_()
        last.bias.zero_()
    assert torch.allclose(eval_outputs(model, sample(name)), torch.full((BATCH, 1), REGRESSION["target_mean"]))
    with torch.no_grad():
        last.bias.fill_(1.0)  # one standardised unit is one target standard deviation
    assert torch.allclose(eval_outputs(model, sample(name)), torch.full((BATCH, 1), 120.0))
