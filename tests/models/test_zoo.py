"""The zoo registry and the built-in models' specifics; tests/models/test_contract.py runs every model."""

import pytest
import torch

from wattless.errors import ModelError
from wattless.models import build_model, check_input_shape


def spec(name, input_shape, num_outputs=10, **kwargs):
    return {"name": name, "kwargs": kwargs, "input_shape": list(input_shape), "num_outputs": num_outputs}


def test_lenet300_has_the_classic_shape():
    model = build_model(spec("lenet300", [1, 28, 28]))
    linear = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linear] == [(784, 300), (300, 100), (100, 10)]
    assert sum(p.numel() for p in model.parameters()) == 266_610


def test_mlp_hidden_sizes_and_regression_head_in_target_units():
    model = build_model(spec("mlp", [5], num_outputs=1, hidden=[7, 3], target_mean=100.0, target_std=20.0))
    linear = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert [m.out_features for m in linear] == [7, 3, 1]
    for m in linear:
        torch.nn.init.zeros_(m.weight)
        torch.nn.init.zeros_(m.bias)
    assert torch.allclose(model(torch.randn(4, 5)), torch.full((4, 1), 100.0))


def test_unknown_model_lists_choices():
    with pytest.raises(ModelError, match="unknown model 'resnet99'.*lenet300"):
        build_model(spec("resnet99", [4]))


def test_bad_options_are_model_errors():
    with pytest.raises(ModelError, match="positive"):
        build_model(spec("mlp", [4], hidden=[0]))
    with pytest.raises(ModelError, match="widht"):
        build_model(spec("mlp", [4], widht=3))
    with pytest.raises(ModelError, match="image inputs"):
        build_model(spec("lenet5", [64]))


def test_check_input_shape_names_the_shape():
    model = build_model(spec("mlp", [64]))
    check_input_shape(model, (64,))
    with pytest.raises(ModelError, match=r"\[30\]"):
        check_input_shape(model, (30,))


def test_user_factory_needs_trust(tmp_path, monkeypatch):
    (tmp_path / "my_models.py").write_text(
        "import torch\n"
        "def tiny(width=4):\n    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, width))\n"
        "def sized(input_shape, num_outputs):\n    return torch.nn.Linear(input_shape[0], num_outputs)\n"
        "not_callable = 3\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModelError, match="--trust-code"):
        build_model(spec("my_models:tiny", [64]))
    model = build_model(spec("my_models:tiny", [64], width=6), trust_code=True)
    assert model(torch.randn(2, 64)).shape == (2, 6)
    model = build_model(spec("my_models:sized", [64], num_outputs=3), trust_code=True)
    assert model(torch.randn(2, 64)).shape == (2, 3)
    with pytest.raises(ModelError, match="no callable"):
        build_model(spec("my_models:not_callable", [64]), trust_code=True)
    with pytest.raises(ModelError, match="cannot import"):
        build_model(spec("no_such_module_xyz:f", [64]), trust_code=True)
