"""Optuna search over the recipe space: budget on validation, confirmed on test, resumable from the database."""

import importlib.util

import optuna
import pytest

import wattless
from wattless.errors import ConfigError
from wattless.recipe import Recipe
from wattless.runs.db import RunsDB
from wattless.runs.search import build_recipe, default_epochs, first_trial, search

FAST = {"batches": (1, 8), "repeats": 3, "epochs": 2}


@pytest.fixture(scope="module")
def wide_mlp(digits):
    """Wide enough to survive 80-95% pruning on digits within a few points."""
    return wattless.train("mlp", digits, model_kwargs={"hidden": [256, 128]}, epochs=10, lr=3e-3, seed=0)


def test_size_search_writes_the_smallest_feasible_trial_and_resumes(wide_mlp, digits, tmp_path, monkeypatch):
    # the shipped first trial (150x by sensitivity) is too much for a 64-input MLP fine-tuned for 2 epochs on
    # digits; start from a milder point of the same space so that this test has a feasible trial to write
    import wattless.runs.search as searching

    start = {"scope": "global", "sparsity": 0.8, "quantizer": "kmeans", "clusters": 16}
    monkeypatch.setattr(searching, "first_trial", lambda *args: start)
    db, out = tmp_path / "runs.db", tmp_path / "best.wlz"
    found = search(wide_mlp, digits, out, max_drop=3.0, objective="size", trials=2, db=db, **FAST)
    assert len(found.rows) == 2
    assert found.rows[0]["params"] == start
    chosen = next(row for row in found.rows if row["status"] == "chosen")
    assert chosen["val_drop"] <= 3 and chosen["test_drop"] <= 3
    feasible = [row for row in found.rows if row["status"] in ("chosen", "within budget")]
    assert chosen["size"] == min(row["size"] for row in feasible)
    assert out.stat().st_size == chosen["size"]  # the same recipe and seed rebuilt the same file
    assert len(RunsDB(db).list(study=found.study_name)) == 2
    again = search(wide_mlp, digits, tmp_path / "again.wlz", max_drop=3.0, objective="size", trials=3, db=db,
                   **FAST)
    assert again.study_name == found.study_name and len(again.rows) == 3  # one more trial, two reused


def test_no_feasible_trial_writes_nothing(trained_mlp, digits, tmp_path):
    # a 32-unit MLP pruned to 95% loses tens of points on digits
    found = search(trained_mlp, digits, tmp_path / "best.wlz", max_drop=1.0, objective="size", trials=1,
                   db=tmp_path / "runs.db", **FAST)
    assert found.path is None and found.chosen is None
    assert not (tmp_path / "best.wlz").exists()
    assert [row["status"] for row in found.rows] == ["over budget"] and found.rows[0]["val_drop"] > 1


@pytest.mark.parametrize("objective", ["size", "latency", "energy"])
def test_every_space_builds_valid_recipes(objective):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(10):
        trial = study.ask()
        Recipe.from_dict(build_recipe(trial, objective, ["1", "3"], epochs=1, int8_allowed=True))
        study.tell(trial, 0.0)
    fixed = optuna.trial.FixedTrial(first_trial(objective, 1, int8_allowed=True))
    assert Recipe.from_dict(build_recipe(fixed, objective, ["1", "3"], epochs=1, int8_allowed=True)).steps


@pytest.mark.parametrize("options, message", [
    ({"objective": "speed"}, "objective 'speed' unknown"),
    ({"trials": 0}, "at least 1"),
    ({"max_drop": 200.0}, "between 0 and 100"),
])
def test_bad_options_fail_before_any_trial(trained_mlp, digits, tmp_path, options, message):
    kwargs = {"max_drop": 1.0, "objective": "size", "trials": 1, **options}
    with pytest.raises(ConfigError, match=message):
        search(trained_mlp, digits, tmp_path / "x.wlz", db=tmp_path / "runs.db", **kwargs)
    assert not (tmp_path / "runs.db").exists()



@pytest.mark.parametrize("objective, shipped", [("size", "deep-compression-auto"),
                                               ("latency", "kd-pruned-student-int8")])
def test_the_first_trial_is_the_shipped_recipe(objective, shipped):
    fixed = optuna.trial.FixedTrial(first_trial(objective, default_epochs(objective), int8_allowed=True))
    built = Recipe.from_dict(build_recipe(fixed, objective, ["1", "3"], default_epochs(objective), True))
    expected = Recipe.load(shipped)
    assert built.step_names == expected.step_names
    assert [cfg for _, cfg in built.steps] == [cfg for _, cfg in expected.steps]


def test_multi_objective_search_returns_a_pareto_front(wide_mlp, digits, tmp_path):
    found = search(wide_mlp, digits, tmp_path / "best.onnx", max_drop=5.0, objective="latency", trials=2,
                   multi=True, db=tmp_path / "runs.db", **FAST)
    assert found.front and set(found.front) <= {row["trial"] for row in found.rows}
    assert all("latency" in row and "size" in row for row in found.rows)
    if found.path is not None:
        assert found.path.suffix == ".onnx" and found.path.exists()


@pytest.mark.skipif(importlib.util.find_spec("zigzag") is None, reason="ZigZag not installed (extra hw)")
def test_an_energy_search_can_compare_simulated_energy(trained_mlp, digits, tmp_path, monkeypatch):
    monkeypatch.setenv("WATTLESS_CACHE", str(tmp_path / "cache"))
    found = search(trained_mlp, digits, tmp_path / "green.wlz", max_drop=50.0, objective="energy", trials=2,
                   db=tmp_path / "runs.db", epochs=0, energy_model="simulated:edge_tpu_like", batches=(1,), repeats=2)
    with RunsDB(tmp_path / "runs.db") as runs:
        records = [runs.get(row["id"])["record"] for row in runs.list(study=found.study_name)]
    assert len(records) == 2 and all("edge_tpu_like" in record["simulated"] for record in records)
    assert found.path is not None and found.path.exists()
