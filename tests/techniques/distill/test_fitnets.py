"""distill.fitnets: sensible default hint and guided layers, a hint stage that lowers the hint error (flat
features and pooled feature maps, cached or per batch), no regressor left in the student, clear layer errors."""

import pytest
import torch

from wattless.api import apply_steps
from wattless.errors import ConfigError
from wattless.io import load, save
from wattless.models import build_model
from wattless.techniques import Context, make_config
from wattless.techniques.distill import fitnets
from wattless.techniques.distill.student import build_student
from wattless.train import evaluate


def stage_one(teacher, data, fields, seed=0):
    cfg = make_config("distill.fitnets", fields)
    ctx = Context(data, seed=seed)
    student = build_student(teacher, cfg, ctx)
    return student, cfg, fitnets.hint_stage(student, teacher, cfg, ctx)


def test_default_layers_are_the_middle_hidden_layer_and_the_same_relative_depth(digits, lenet300_teacher,
                                                                                digit_images, lenet5_teacher):
    assert fitnets.hidden_layers(lenet300_teacher.module, (64,)) == ["1", "3"]
    for hidden, guided in (([16], "1"), ([32, 16, 8], "3"), ([32, 16, 8, 4], "3")):
        cfg = make_config("distill.fitnets", {"student": "mlp", "student_kwargs": {"hidden": hidden}})
        student = build_student(lenet300_teacher.module, cfg, Context(digits))
        assert fitnets.pick_layers(lenet300_teacher.module, student, cfg, (64,)) == ("1", guided)  # 300 units
    assert fitnets.hidden_layers(lenet5_teacher.module, (1, 16, 16)) == ["features.0", "features.3",
                                                                           "classifier.1", "classifier.3"]
    cfg = make_config("distill.fitnets")
    student = build_student(lenet5_teacher.module, cfg, Context(digit_images))
    assert fitnets.pick_layers(lenet5_teacher.module, student, cfg, (1, 16, 16)) == ("features.3", "features.3")


@pytest.mark.parametrize("fields", [{}, {"student": "mlp", "student_kwargs": {"hidden": [32, 16]}},
                                    {"student": "teacher-copy", "width": 0.25}])
def test_hint_stage_lowers_the_hint_error_on_flat_features(digits, lenet300_teacher, fields):
    _, _, (before, after) = stage_one(lenet300_teacher.module, digits, {**fields, "hint_epochs": 3})
    assert after < 0.8 * before  # measured: 1.76 -> 0.30, 1.38 -> 1.02, 1.42 -> 0.70


def test_hint_stage_pools_maps_and_gives_the_same_result_uncached(monkeypatch, digit_images, lenet5_teacher):
    fields = {"student": "lenet5", "hint_layer": "features.0", "guided_layer": "features.3", "hint_epochs": 2}
    first, _, (before, after) = stage_one(lenet5_teacher.module, digit_images, fields)  # 6x16x16 -> 16x4x4
    assert after < 0.8 * before
    monkeypatch.setattr(fitnets, "HINT_CACHE_BYTES", 0)  # hints computed per batch
    second, _, per_batch = stage_one(lenet5_teacher.module, digit_images, fields)
    assert per_batch == pytest.approx((before, after), rel=1e-5)
    for a, b in zip(first.parameters(), second.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-6)


def test_a_working_student_without_the_regressor(tmp_path, digits, lenet300_teacher):
    step = "distill.fitnets:student=mlp,student_kwargs={hidden: [32, 16]},hint_epochs=3,epochs=10,lr=0.01"
    result = apply_steps(lenet300_teacher, digits, [step])
    assert evaluate(result.module, digits.X_test, digits.y_test, "classification")["accuracy"] > 0.85
    assert result.module.state_dict().keys() == build_model(result.meta["model"]).state_dict().keys()
    save(result, tmp_path / "student.wlz")
    x = torch.as_tensor(digits.X_test)
    with torch.no_grad():
        assert torch.equal(load(tmp_path / "student.wlz").module(x), result.module(x))


@pytest.mark.parametrize("fields, message", [
    ({"hint_layer": "9"}, "hint_layer='9' names no layer of the teacher; its hidden layers: 1, 3"),
    ({"guided_layer": "fc"}, "guided_layer='fc' names no layer of the student"),
])
def test_bad_layers_are_refused(digits, lenet300_teacher, fields, message):
    with pytest.raises(ConfigError, match=message):
        stage_one(lenet300_teacher.module, digits, {**fields, "hint_epochs": 1})


def test_a_map_hint_for_flat_features_is_refused(digit_images, lenet5_teacher):
    with pytest.raises(ConfigError, match=r"cannot regress .* \[16\] onto the hint's \[16, 4, 4\]"):
        stage_one(lenet5_teacher.module, digit_images, {"student": "mlp", "student_kwargs": {"hidden": [16]}})
