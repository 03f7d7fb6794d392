"""ResNet-18, CIFAR form: the reference size, any image size, width scaling, and structured pruning through
its residual connections (the pruned model is smaller, runs, saves, loads and exports)."""

import numpy as np
import pytest
import torch
from torch import nn

from wattless.api import apply_steps
from wattless.data import Dataset
from wattless.deploy import OnnxModel, export_onnx
from wattless.errors import ModelError
from wattless.io import WattlessModel, load, save
from wattless.measurement import count_macs, count_params
from wattless.models import build_model
from wattless.models.resnet import BasicBlock


def spec(input_shape=(3, 32, 32), num_outputs=10, **kwargs):
    return {"name": "resnet18", "kwargs": kwargs, "input_shape": list(input_shape), "num_outputs": num_outputs}


def convs(module):
    return [m for m in module.modules() if isinstance(m, nn.Conv2d)]


def test_cifar_resnet18_has_the_reference_size_and_stem():
    model = build_model(spec())
    assert count_params(model)[0] == 11_173_962  # the usual CIFAR-10 ResNet-18 figure
    assert count_macs(model, (3, 32, 32))["total"] == 555_422_720  # 0.56 GMACs
    stem = convs(model)[0]
    assert (stem.kernel_size, stem.stride, stem.out_channels) == ((3, 3), (1, 1), 64)
    assert not any(isinstance(m, nn.MaxPool2d) for m in model.modules())
    assert [len(stage) for stage in (model.layer1, model.layer2, model.layer3, model.layer4)] == [2, 2, 2, 2]
    assert len(convs(model)) == 1 + 8 * 2 + 3  # stem, two per BasicBlock, three projection shortcuts


def test_width_scales_every_layer():
    model = build_model(spec(width=0.125))
    assert sorted({conv.out_channels for conv in convs(model)}) == [8, 16, 32, 64]
    assert model.head[0].in_features == 64


@pytest.mark.parametrize("input_shape", [(1, 1, 1), (1, 7, 5), (4, 40, 24)])
def test_any_image_size_and_channel_count(input_shape):
    model = build_model(spec(input_shape, num_outputs=3, width=0.125)).eval()
    assert model(torch.randn(2, *input_shape)).shape == (2, 3)


def test_bad_options_are_model_errors():
    with pytest.raises(ModelError, match="image inputs"):
        build_model(spec((64,)))
    with pytest.raises(ModelError, match="width"):
        build_model(spec(width=0.0))


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 3, 16, 16)).astype(np.float32)
    y = rng.integers(0, 10, 64)
    return Dataset("images", "classification", X, y, X, y, X, y, classes=[str(c) for c in range(10)])


def test_structured_pruning_through_the_residual_connections(tmp_path, images):
    model_spec = spec((3, 16, 16), width=0.125)
    torch.manual_seed(0)
    module = build_model(model_spec)
    module.train()(torch.as_tensor(images.X_train[:16]))  # non-trivial BatchNorm statistics
    model = WattlessModel(module.eval(), {"model": model_spec, "task": "classification", "recipe": [], "seed": 0})
    pruned = apply_steps(model, images, ["prune.structured:ratio=0.5,finetune_epochs=0"])

    # the residual sums couple every block of a stage with its input, and Torch-Pruning keeps them equal
    assert sorted({conv.out_channels for conv in convs(pruned.module)}) == [4, 8, 16, 32]
    for block in pruned.module.modules():
        if isinstance(block, BasicBlock):
            shortcut = block.shortcut[1].num_features if isinstance(block.shortcut, nn.Sequential) else None
            assert block.body[4].num_features == (shortcut or block.body[0].in_channels)
    assert pruned.module.head[0].out_features == 10  # the output layer keeps its size
    assert count_params(pruned.module)[0] < 0.3 * count_params(module)[0]
    assert count_macs(pruned.module, (3, 16, 16))["total"] < 0.3 * count_macs(module, (3, 16, 16))["total"]

    X = torch.as_tensor(images.X_test[:8])
    with torch.no_grad():
        expected = pruned.module.eval()(X)
    assert expected.shape == (8, 10)
    save(pruned, tmp_path / "pruned.wlz")
    loaded = load(tmp_path / "pruned.wlz")
    with torch.no_grad():
        assert torch.equal(loaded.module(X), expected)
    onnx_path = export_onnx(loaded.module, (3, 16, 16), tmp_path / "pruned.onnx")
    np.testing.assert_allclose(OnnxModel(onnx_path).predict(X.numpy()), expected.numpy(), rtol=1e-4, atol=1e-5)
