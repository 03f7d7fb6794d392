"""Recipes from YAML: validated completely before any work, int8 only as the last step."""

import pytest

from wattless.errors import ConfigError
from wattless.recipe import OBJECTIVES, Recipe, load_ladder, shipped_recipes


def write(tmp_path, text):
    path = tmp_path / "r.yaml"
    path.write_text(text)
    return path


def test_recipe_with_steps_and_int8(tmp_path):
    recipe = Recipe.from_yaml(write(tmp_path, """
name: prune-int8
steps:
  - prune.magnitude: {sparsity: 0.5, finetune_epochs: 1}
  - quantize.int8: {calibration: percentile}
"""))
    assert [name for name, _ in recipe.transforms] == ["prune.magnitude"]
    assert recipe.step_names == ["prune.magnitude", "quantize.int8"] and recipe.output_suffix == ".onnx"
    assert recipe.steps[0][1].sparsity == 0.5
    assert recipe.int8 and recipe.calibration == "percentile"


@pytest.mark.parametrize("text, message", [
    ("steps: [{prune.magic: {}}]", "unknown technique"),
    ("steps: [{prune.magnitude: {sparsity: 2}}]", "sparsity"),
    ("steps: [{quantize.int8: {}}, {prune.magnitude: {}}]", "last step"),
    ("steps: [{quantize.int8: {calibration: fancy}}]", "calibration"),
    ("stepz: []", "'steps' list"),
    ("steps: []\nextra: 1", "unknown recipe keys"),
    ("steps: [{a: 1, b: 2}]", "step 1"),
    ("steps: [: bad", "not valid YAML"),
    ("!!python/object/apply:os.system ['echo owned']", "not valid YAML"),
])
def test_invalid_recipes_are_refused_before_any_work(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        Recipe.from_yaml(write(tmp_path, text))


def test_missing_recipe_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        Recipe.from_yaml(tmp_path / "nope.yaml")


def test_calibration_methods_match_the_int8_quantizer():
    """recipe.py keeps its own list so `import wattless` does not load ONNX Runtime; it must not drift."""
    from wattless.deploy import CALIBRATION_METHODS as quantizer_methods
    from wattless.recipe import CALIBRATION_METHODS

    assert set(CALIBRATION_METHODS) == set(quantizer_methods)


def test_an_empty_recipe_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="no steps"):
        Recipe.from_yaml(write(tmp_path, "steps: []"))


def test_a_bad_field_error_names_the_step(tmp_path):
    with pytest.raises(ConfigError, match="step 2: invalid config for quantize.ptq: bits"):
        Recipe.from_yaml(write(tmp_path, "steps: [{prune.magnitude: {}}, {quantize.ptq: {bits: 99}}]"))


@pytest.mark.parametrize("name", shipped_recipes())
def test_every_shipped_recipe_validates_and_round_trips(name):
    recipe = Recipe.load(name)
    assert recipe.name == name and recipe.description
    again = Recipe.from_dict(recipe.to_dict())
    assert again.step_names == recipe.step_names
    assert [cfg for _, cfg in again.steps] == [cfg for _, cfg in recipe.steps]


def test_the_issue_recipes_are_shipped():
    assert {"deep-compression", "prune-int8", "kd-int8", "kd-pruned-student-int8"} <= set(shipped_recipes())
    assert Recipe.load("kd-pruned-student-int8").step_names == ["distill.hinton", "quantize.int8"]


def test_recipe_load_takes_a_path_too(tmp_path):
    path = write(tmp_path, "steps: [{quantize.ptq: {bits: 4}}]")
    assert Recipe.load(path).step_names == ["quantize.ptq"]
    assert Recipe.load(str(path)).steps[0][1].bits == 4


def test_an_unknown_recipe_name_lists_the_shipped_ones():
    with pytest.raises(ConfigError, match="neither a file nor a shipped recipe; shipped: deep-compression"):
        Recipe.load("deep-compresion")
    with pytest.raises(ConfigError, match="not found"):
        Recipe.load("missing.yaml")


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_the_shipped_ladder_validates_for_every_objective(objective):
    ladder = load_ladder(objective)
    assert len(ladder) >= 3 and all(recipe.name for recipe in ladder)


def test_latency_ladder_ends_in_int8_deployments():
    assert all(recipe.int8 for recipe in load_ladder("latency"))


@pytest.mark.parametrize("text, message", [
    ("size: []", "non-empty list of recipes under 'size'"),
    ("latency: [{name: a, steps: [quantize.int8]}]", "under 'size'"),
    ("size: [{name: a, steps: [{quantize.ptq: {bits: 0}}]}]", "size #1"),
    ("size: [no-such-recipe]", "neither a file nor a shipped recipe"),
    ("size: [deep-compression, deep-compression]", "names a recipe twice"),
    ("size: [3]", "a recipe name or"),
])
def test_a_bad_ladder_is_refused(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        load_ladder("size", write(tmp_path, text))


def test_an_unknown_objective_is_refused():
    with pytest.raises(ConfigError, match="objective 'speed' unknown; use one of size, latency, energy"):
        load_ladder("speed")


def test_int8_step_takes_a_dynamic_mode(tmp_path):
    recipe = Recipe.from_yaml(write(tmp_path, "steps: [{quantize.int8: {mode: dynamic}}]"))
    assert recipe.int8 and recipe.int8_mode == "dynamic"
    assert Recipe.from_dict(recipe.to_dict()).int8_mode == "dynamic"
    assert Recipe.from_yaml(write(tmp_path, "steps: [quantize.int8]")).int8_mode == "static"
    with pytest.raises(ConfigError, match="dynamic int8 needs no calibration"):
        Recipe.from_yaml(write(tmp_path, "steps: [{quantize.int8: {mode: dynamic, calibration: minmax}}]"))
    with pytest.raises(ConfigError, match="mode: Input should be 'static' or 'dynamic'"):
        Recipe.from_yaml(write(tmp_path, "steps: [{quantize.int8: {mode: weird}}]"))
