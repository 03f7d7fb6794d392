"""Study validation (every mistake is one clear error before any work) and trial keys."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from wattless import __version__
from wattless.errors import ConfigError
from wattless.runs.study import BASELINE, load_study, stable_hash, study_from_dict


@pytest.fixture
def study(tiny):
    """The tiny study with top-level keys replaced, validated."""
    return lambda **changes: study_from_dict({**tiny, **changes}, source="study.yaml")


def test_the_grid_is_models_x_datasets_x_seeds_x_recipes_with_the_baseline_first(study):
    trials = study(seeds=[0, 1], models=["mlp", {"name": "mlp", "kwargs": {"hidden": [8]}}]).trials()
    assert len(trials) == 2 * 1 * 2 * 3
    assert [t.recipe_name for t in trials[:3]] == [BASELINE, "ptq4", "prune50"]
    assert trials[0].recipe is None and trials[1].recipe["steps"] == [{"quantize.ptq": trials[1].recipe["steps"][0]
                                                                      ["quantize.ptq"]}]
    assert trials[1].suffix == ".wlz"
    assert study(recipes=[{"name": "int8", "steps": ["quantize.int8"]}]).trials()[1].suffix == ".onnx"
    assert len({t.key for t in trials}) == len(trials)


def test_recipes_of_one_base_model_share_its_key(study):
    trials = study(seeds=[0, 1]).trials()
    assert len({t.base_key for t in trials}) == 2  # one per seed
    assert len({t.base_key for t in trials if t.seed == 0}) == 1


def test_keys_are_stable_across_spellings_of_the_same_study(tmp_path, tiny):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(tiny))
    reordered = dict(reversed(list(tiny.items())))
    explicit = {**tiny, "train": {"lr": 0.01, "epochs": 1, "batch_size": 128}, "datasets": [{"name": "digits",
                                                                                             "split_seed": 0}]}
    keys = [t.key for t in load_study(path).trials()]
    assert keys == [t.key for t in study_from_dict(reordered).trials()]
    assert keys == [t.key for t in study_from_dict(explicit).trials()]  # defaults spelled out: the same trials
    assert len(keys[0]) == 64 and stable_hash({"a": 1, "b": 2}) == stable_hash({"b": 2, "a": 1})


CHANGES = {
    "model kwargs": {"models": [{"name": "mlp", "kwargs": {"hidden": [17]}}]},
    "data set options": {"datasets": [{"name": "digits", "split_seed": 1}]},
    "train config": {"train": {"epochs": 1, "lr": 0.02}},
    "seed": {"seeds": [1]},
    "measurement": {"measure": {"batches": [1], "repeats": 3, "engines": ["torch"]}},
    "study name": {"name": "other"},
}


@pytest.mark.parametrize("what", CHANGES)
def test_every_key_changes_when_an_input_changes(study, what):
    before, after = study().trials(), study(**CHANGES[what]).trials()
    assert not {t.key for t in before} & {t.key for t in after}
    base_changes = what not in ("measurement", "study name")
    assert (before[0].base_key != after[0].base_key) == base_changes


def test_a_recipe_change_or_a_new_version_changes_the_key(study):
    before = study().trials()
    after = study(recipes=[{"name": "ptq4", "steps": [{"quantize.ptq": {"bits": 3}}]}]).trials()
    assert before[0].key == after[0].key and before[1].key != after[1].key  # only the changed recipe
    newer = dataclasses.replace(before[1], version=__version__ + ".post1")
    assert newer.key != before[1].key and newer.base_key != before[1].base_key


def test_recipes_by_shipped_name_or_file(tmp_path, tiny):
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump({"steps": [{"quantize.ptq": {"bits": 6}}]}))
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({**tiny, "recipes": ["deep-compression", "mine.yaml"], "baseline": False}))
    names = [t.recipe_name for t in load_study(path).trials()]
    assert names == ["deep-compression", "mine"]


BAD = {
    "unknown key": ({"model": ["mlp"]}, "unknown study keys ['model']"),
    "unknown model": ({"models": ["resnet999"]}, "unknown model 'resnet999'"),
    "user code": ({"models": ["mypkg.models:net"]}, "--trust-code"),
    "model options": ({"models": [{"name": "mlp", "kwargs": {"depth": 3}}]}, "cannot build model 'mlp'"),
    "model entry": ({"models": [{"name": "mlp", "size": 3}]}, "a model is a name or {name, kwargs}"),
    "no models": ({"models": []}, "models must be a non-empty list"),
    "unknown data set": ({"datasets": ["imagenet"]}, "unknown data set 'imagenet'"),
    "data set option": ({"datasets": [{"name": "digits", "shuffle": True}]}, "unknown data set options"),
    "unknown technique": ({"recipes": [{"steps": [{"quantize.magic": {}}]}]}, "unknown technique 'quantize.magic'"),
    "technique field": ({"recipes": [{"steps": [{"quantize.ptq": {"bitz": 4}}]}]}, "bitz"),
    "unknown recipe": ({"recipes": ["deep-decompression"]}, "'deep-decompression' is neither"),
    "train seed": ({"train": {"seed": 3}}, "list the seeds under 'seeds'"),
    "train field": ({"train": {"epoch": 3}}, "train.epoch"),
    "seeds": ({"seeds": [0, 0]}, "seeds must be a non-empty list of distinct"),
    "repeated recipe": ({"recipes": [{"name": "a", "steps": ["quantize.int8"]}, {"name": "a", "steps":
                                                                                   ["quantize.int8"]}]},
                        "repeated: a"),
    "baseline listed": ({"recipes": ["baseline"]}, "measured by default"),
    "nothing to run": ({"recipes": [], "baseline": False}, "nothing to run"),
    "measure": ({"measure": {"engines": ["tensorrt"]}}, "measure.engines"),
    "shapes": ({"models": ["lenet5"]}, "lenet5"),
}


@pytest.mark.parametrize("what", BAD)
def test_bad_studies_are_one_clear_error(study, what):
    changes, fragment = BAD[what]
    with pytest.raises(ConfigError) as info:
        study(**changes)
    message = str(info.value)
    assert fragment in message and message.startswith("study.yaml") and "\n" not in message, message


def test_unreadable_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_study(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("models: [mlp\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_study(tmp_path / "bad.yaml")
    (tmp_path / "list.yaml").write_text("- mlp\n")
    with pytest.raises(ConfigError, match="a study is a mapping"):
        load_study(tmp_path / "list.yaml")
