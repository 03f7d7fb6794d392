"""Running recipes: a record after every step, the file written, the same bytes for the same seed."""

import hashlib

import pytest

import wattless
from wattless.errors import ConfigError
from wattless.pipeline import run_recipe
from wattless.recipe import Recipe

PRUNE_SHARE = {"steps": [{"prune.magnitude": {"sparsity": 0.7, "finetune_epochs": 1}},
                         {"share.kmeans": {"clusters": 8, "finetune_epochs": 1}}]}


def test_every_step_is_recorded_on_validation_and_test(trained_mlp, digits, tmp_path):
    result = run_recipe(trained_mlp, digits, Recipe.from_dict(PRUNE_SHARE), tmp_path / "out.wlz")
    assert [r["stage"] for r in result.records] == ["original", "prune.magnitude", "share.kmeans"]
    original, pruned, shared = result.records
    assert pruned["nonzero_params"] < 0.35 * original["nonzero_params"]
    assert shared["size_bytes"] < pruned["size_bytes"] < original["size_bytes"]
    for record in result.records:
        assert 0 < record["val"]["accuracy"] <= 1 and 0 < record["accuracy"] <= 1
    assert pruned["seconds"] > 0 and original["seconds"] == 0
    assert (tmp_path / "out.wlz").stat().st_size == result.path.stat().st_size
    loaded = wattless.load(result.path)
    assert [step["technique"] for step in loaded.recipe] == ["prune.magnitude", "share.kmeans"]


def test_int8_deployment_is_the_last_recorded_stage(trained_mlp, digits, tmp_path):
    recipe = Recipe.from_dict({"steps": [{"prune.structured": {"ratio": 0.5, "finetune_epochs": 1}}, "quantize.int8"]})
    result = run_recipe(trained_mlp, digits, recipe, tmp_path / "out.onnx")
    assert [r["stage"] for r in result.records] == ["original", "prune.structured", "quantize.int8"]
    assert result.records[-1]["precision"] == "int8"
    assert result.records[-1]["size_bytes"] == (tmp_path / "out.onnx").stat().st_size


def test_the_original_model_is_left_untouched(trained_mlp, digits, tmp_path):
    before = {k: v.clone() for k, v in trained_mlp.module.state_dict().items()}
    run_recipe(trained_mlp, digits, Recipe.from_dict(PRUNE_SHARE), tmp_path / "out.wlz", record=False)
    after = trained_mlp.module.state_dict()
    assert all((before[k] == after[k]).all() for k in before)


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_recipe_runs_identically_twice_with_the_same_seed(trained_mlp, digits, tmp_path):
    recipe = Recipe.from_dict({"steps": [
        {"distill.hinton": {"student": "teacher-pruned", "width": 0.5, "epochs": 2}},
        *PRUNE_SHARE["steps"]]})
    first = run_recipe(trained_mlp, digits, recipe, tmp_path / "a.wlz", seed=3, record=False).path
    second = run_recipe(trained_mlp, digits, recipe, tmp_path / "b.wlz", seed=3, record=False).path
    other = run_recipe(trained_mlp, digits, recipe, tmp_path / "c.wlz", seed=4, record=False).path
    assert _digest(first) == _digest(second)
    assert _digest(first) != _digest(other)


def test_a_distilled_zoo_student_is_written_with_its_own_architecture(trained_mlp, digits, tmp_path):
    recipe = Recipe.from_dict({"steps": [{"distill.hinton": {"student": "mlp", "student_kwargs": {"hidden": [8]},
                                                             "epochs": 2}}]})
    result = run_recipe(trained_mlp, digits, recipe, tmp_path / "s.wlz", record=False)
    loaded = wattless.load(result.path)
    assert loaded.meta["model"]["kwargs"]["hidden"] == [8]
    assert sum(p.numel() for p in loaded.module.parameters()) < sum(
        p.numel() for p in trained_mlp.module.parameters())


def test_int8_recipes_need_an_onnx_output_before_any_work(trained_mlp, digits, tmp_path):
    recipe = Recipe.from_dict({"steps": [{"distill.hinton": {"epochs": 50}}, "quantize.int8"]})
    with pytest.raises(ConfigError, match="use -o .*out.onnx"):
        run_recipe(trained_mlp, digits, recipe, tmp_path / "out.wlz")
    assert not list(tmp_path.iterdir())


def test_compress_takes_a_shipped_recipe_by_name(trained_mlp, digits, tmp_path, monkeypatch):
    import wattless.api as api

    seen = []
    monkeypatch.setattr("wattless.api._compress.run_recipe", lambda m, d, recipe, out, **kw: seen.append(recipe) or
                        out.touch() or type("R", (), {"path": out, "records": []})())  # writes out, as it would
    api.compress(trained_mlp, digits, tmp_path / "x.onnx", recipe="prune-int8", measure_result=False)
    assert seen[0].name == "prune-int8" and seen[0].int8
    with pytest.raises(ConfigError, match="one of --recipe, --step or --max-drop"):
        api.compress(trained_mlp, digits, tmp_path / "y.onnx", recipe="prune-int8", steps=["quantize.ptq"])
