"""Distillation students: each kind has the expected architecture, saves and loads to the same outputs, leaves the
teacher untouched, comes out the same for the same seed, and bad configs fail before any work."""

import copy

import pytest
import torch
from torch import nn

from wattless.api import apply_steps
from wattless.errors import ConfigError
from wattless.io import load, save
from wattless.measurement import count_params
from wattless.structure import edits_of
from wattless.techniques import Context, get_technique, make_config
from wattless.techniques.distill import hinton


def weight_shapes(module):
    return [tuple(m.weight.shape) for m in module.modules() if isinstance(m, nn.Linear)]


@pytest.mark.parametrize("name", ["distill.hinton", "distill.fitnets"])
@pytest.mark.parametrize("fields, message", [
    ({"student": "resnet9000"}, "unknown student 'resnet9000'.*teacher-pruned, teacher-copy.*mlp"),
    ({"student": "mypkg.nets:tiny"}, "import path.*use a zoo name"),
    ({"width": 0}, "width"),
    ({"width": 1.5}, "width"),
    ({"widht": 0.5}, "widht.*fields: .*width"),
    ({"student_kwargs": {"hidden": [8]}}, "student_kwargs apply to zoo students only"),
    ({"temperature": 0}, "temperature"),
    ({"alpha": 1.5}, "alpha"),
    ({"importance": "thinet"}, "importance"),
])
def test_bad_configs_fail_at_validation(name, fields, message):
    with pytest.raises(ConfigError, match=message):
        make_config(name, fields)


def test_a_bad_step_fails_before_any_work(monkeypatch, digits, teacher):
    def no_work(*args):
        raise AssertionError("a student was built before every step was validated")

    monkeypatch.setattr(hinton, "build_student", no_work)
    with pytest.raises(ConfigError, match="unknown student"):
        apply_steps(teacher, digits, ["distill.hinton:epochs=1", "distill.hinton:student=nope"])


def test_a_width_that_empties_a_layer_names_the_width(digits, teacher):
    with pytest.raises(ConfigError, match="width=0.001 for student=teacher-copy.*remove all 128 channels"):
        apply_steps(teacher, digits, ["distill.hinton:student=teacher-copy,width=0.001"])


def test_teacher_pruned_keeps_the_teachers_weights_of_the_kept_units(digits, teacher):
    student = apply_steps(teacher, digits, ["distill.hinton:student=teacher-pruned,width=0.5,epochs=0"]).module
    assert weight_shapes(student) == [(64, 64), (10, 64)]
    kept = [int((teacher.module[1].weight == row).all(1).nonzero()) for row in student[1].weight]  # one match each
    assert len(set(kept)) == 64
    assert torch.equal(student[3].weight, teacher.module[3].weight[:, kept])


def test_teacher_copy_is_the_narrowed_architecture_from_a_fresh_start(digits, teacher):
    student = apply_steps(teacher, digits, ["distill.hinton:student=teacher-copy,width=0.25,epochs=0"]).module
    assert weight_shapes(student) == [(32, 64), (10, 32)]
    matches = (student[1].weight[:, None, :] == teacher.module[1].weight[None]).all(2)
    assert not matches.any()  # no row of the teacher survives re-initialisation


@pytest.mark.parametrize("step, shapes, model_name", [
    ("distill.hinton:student=teacher-pruned,width=0.5,epochs=1", [(64, 64), (10, 64)], "mlp"),
    ("distill.hinton:student=teacher-copy,width=0.25,epochs=1", [(32, 64), (10, 32)], "mlp"),
    ("distill.hinton:student=mlp,student_kwargs={hidden: [16]},epochs=1", [(16, 64), (10, 16)], "mlp"),
    ("distill.fitnets:student=lenet300,epochs=1,hint_epochs=1", [(300, 64), (100, 300), (10, 100)], "lenet300"),
    ("distill.fitnets:student=teacher-copy,width=0.5,epochs=1,hint_epochs=1", [(64, 64), (10, 64)], "mlp"),
])
def test_each_student_has_its_architecture_and_round_trips(tmp_path, digits, teacher, step, shapes, model_name):
    result = apply_steps(teacher, digits, [step])
    assert weight_shapes(result.module) == shapes
    assert count_params(result.module)[0] == sum(o * i + o for o, i in shapes)
    assert result.meta["model"]["name"] == model_name
    assert result.recipe[-1]["technique"] == step.partition(":")[0]
    assert not hasattr(result.module, "_wattless_spec")  # moved into the metadata
    save(result, tmp_path / "student.wlz")
    loaded = load(tmp_path / "student.wlz")
    x = torch.as_tensor(digits.X_test)
    with torch.no_grad():
        assert torch.equal(loaded.module(x), result.module.eval()(x))
    assert weight_shapes(loaded.module) == shapes


def test_a_zoo_student_records_its_own_spec(digits, teacher):
    result = apply_steps(teacher, digits, ["distill.hinton:student=mlp,student_kwargs={hidden: [16]},epochs=0"])
    assert result.meta["model"] == {"name": "mlp", "kwargs": {"hidden": [16]}, "input_shape": [64], "num_outputs": 10}
    assert edits_of(result.module) == []
    assert teacher.meta["model"]["kwargs"] == {"hidden": [128]}


@pytest.mark.parametrize("name, student", [("distill.hinton", "teacher-pruned"), ("distill.hinton", "teacher-copy"),
                                           ("distill.fitnets", "teacher-pruned"), ("distill.fitnets", "mlp")])
def test_the_teacher_is_left_unchanged(digits, teacher, name, student):
    module = copy.deepcopy(teacher.module).train()
    before = copy.deepcopy(module.state_dict())
    cfg = make_config(name, {"student": student, "epochs": 1, **({"hint_epochs": 1} if "fitnets" in name else {})})
    result = get_technique(name).apply(module, cfg, Context(digits, seed=0))
    assert result is not module
    assert module.training  # its mode is restored too
    assert edits_of(module) == []
    assert module.state_dict().keys() == before.keys()
    assert all(torch.equal(module.state_dict()[k], before[k]) for k in before)


@pytest.mark.parametrize("step", ["distill.hinton:student=teacher-copy,epochs=2",
                                  "distill.fitnets:student=mlp,student_kwargs={hidden: [16]},epochs=2,hint_epochs=2"])
def test_same_seed_same_student_other_seed_differs(digits, teacher, step):
    a, b, c = (apply_steps(teacher, digits, [step], seed=seed).module.state_dict() for seed in (3, 3, 4))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)
