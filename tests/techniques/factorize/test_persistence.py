"""Factorized models as files: the recorded edits rebuild the same structure (on the meta device too), so
save/load gives identical outputs, ONNX export matches PyTorch, and a bad edit is refused."""

import pytest
import torch

from wattless.api import apply_steps
from wattless.deploy import OnnxModel, export_onnx
from wattless.io import load, save
from wattless.models import build_model
from wattless.structure import edits_of, replay_edits

STEPS = [
    ("mlp", "factorize.svd:ratio=0.25,finetune_epochs=1"),
    ("lenet5", "factorize.tucker:ratio=0.5,finetune_epochs=0"),
    ("lenet5", "factorize.tucker:ranks=vbmf,finetune_epochs=0"),
    ("lenet5", "factorize.cp:rank=4,finetune_epochs=0"),
]


@pytest.fixture(scope="module")
def factorized(request, digits, trained_mlp, digit_images, lenet5):
    model_name, step = request.param
    model, data = (trained_mlp, digits) if model_name == "mlp" else (lenet5, digit_images)
    return apply_steps(model, data, [step]), data


@pytest.mark.parametrize("factorized", STEPS, indirect=True, ids=[step for _, step in STEPS])
def test_save_load_and_onnx_give_the_same_outputs(factorized, tmp_path):
    model, data = factorized
    assert edits_of(model.module)
    x = torch.as_tensor(data.X_test[:32])
    with torch.no_grad():
        expected = model.module.eval()(x)
    save(model, tmp_path / "f.wlz")
    loaded = load(tmp_path / "f.wlz")
    assert edits_of(loaded.module) == edits_of(model.module)
    with torch.no_grad():
        assert torch.equal(loaded.module(x), expected)
    export_onnx(loaded.module, loaded.input_shape, tmp_path / "f.onnx")
    assert torch.allclose(torch.as_tensor(OnnxModel(tmp_path / "f.onnx").predict(x.numpy())), expected, atol=1e-4)


@pytest.mark.parametrize("factorized", STEPS, indirect=True, ids=[step for _, step in STEPS])
def test_replay_on_the_meta_device_builds_the_same_shapes(factorized):
    model, _ = factorized
    with torch.device("meta"):
        skeleton = build_model(model.spec)
        replay_edits(skeleton, edits_of(model.module))
    shapes = {key: value.shape for key, value in skeleton.state_dict().items()}
    assert shapes == {key: value.shape for key, value in model.module.state_dict().items()}
    assert all(value.is_meta for value in skeleton.state_dict().values())


@pytest.mark.parametrize("edit, message", [
    ({"kind": "factorize.svd", "layer": "1", "rank": 33}, "rank 33 does not fit layer '1'"),
    ({"kind": "factorize.svd", "layer": "9", "rank": 3}, "no layer '9'"),
    ({"kind": "factorize.svd", "layer": "2", "rank": 3}, "layer '2' is ReLU, not Linear"),
    ({"kind": "factorize.tucker", "layer": "1", "ranks": [2, 2]}, "is Linear, not Conv2d"),
    ({"kind": "factorize.cp", "layer": "1", "rank": 2}, "is Linear, not Conv2d"),
])
def test_a_bad_recorded_edit_is_a_value_error(trained_mlp, edit, message):
    with torch.device("meta"):
        skeleton = build_model(trained_mlp.spec)
    with pytest.raises(ValueError, match=message):
        replay_edits(skeleton, [edit])


@pytest.mark.parametrize("step", ["factorize.tucker:ratio=0.5", "factorize.cp:ratio=0.5"])
def test_a_model_without_convolutions_is_refused_not_silently_kept(trained_mlp, digits, step):
    from wattless.api import apply_steps
    from wattless.errors import ConfigError

    with pytest.raises(ConfigError, match="has no .* to factorize"):
        apply_steps(trained_mlp, digits, [step])
