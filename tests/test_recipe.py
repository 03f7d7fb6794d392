"""Recipes from YAML: validated completely before any work, int8 only as the last step."""

import pytest

from wattless.errors import ConfigError
from wattless.recipe import Recipe


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
    assert [name for name, _ in recipe.steps] == ["prune.magnitude"]
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
