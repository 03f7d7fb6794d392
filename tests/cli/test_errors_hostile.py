"""Hostile input (issue 17): whatever the values, one ``error:`` line of bounded length, exit 2, nothing written."""

from __future__ import annotations

import pytest

from wattless.cli._app import MAX_MESSAGE


def alias_bomb(levels: int = 9) -> str:
    """Anchors of nine aliases of the one before: 9**(levels + 1) strings once expanded, from 500 bytes."""
    lines = ['  x0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"  x{i}: &a{i} [{','.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels + 1)]
    return "\n".join(lines)


@pytest.mark.parametrize("where", ["name", "seeds"])
def test_a_study_with_an_alias_bomb_is_one_short_error(user_error, work, where):
    (work / "s.yaml").write_text(f"{where}:\n{alias_bomb()}\nmodels: [mlp]\ndatasets: [digits]\nrecipes: [kd-int8]\n")
    result = user_error(["sweep", "s.yaml", "--db", "r.db"], "s.yaml", "aliases")
    assert len(result.err) < 300


@pytest.mark.parametrize("levels", [9, 10])
def test_a_recipe_with_an_alias_bomb_in_its_description_is_one_short_error(user_error, work, model_path, levels):
    (work / "r.yaml").write_text(f"description:\n{alias_bomb(levels)}\nsteps: [quantize.int8]\n")
    user_error(["compress", model_path, "--recipe", "r.yaml", "-o", "x.onnx"], "r.yaml", "aliases")


def test_an_alias_bomb_in_a_model_arg_is_one_short_error(user_error):
    bomb = "[&a0 [1,1,1,1,1,1,1,1,1]" + "".join(f", &a{i} [{','.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10))
    user_error(["train", "--model", "mlp", "--dataset", "digits", "--model-arg", f"hidden={bomb}]", "-o", "a.wlz"],
               "--model-arg hidden", "aliases")


def test_an_error_message_is_cut_to_one_bounded_line(user_error, monkeypatch):
    import wattless.api
    from wattless.errors import ConfigError

    def measure(*args, **kwargs):
        raise ConfigError("value " + "x" * 10**7 + "\nsecond line")

    monkeypatch.setattr(wattless.api, "measure", measure)
    result = user_error(["measure", "m.wlz"], "value xxx", "...")
    assert len(result.err) <= len("error: \n") + MAX_MESSAGE


@pytest.mark.parametrize("args, fragment", [
    (["--step", "quantize.ptq:bits=4,bits=8"], "'bits' twice"),
    (["--step", "prune.magnitude:sparsity=0.5, sparsity=0.9"], "'sparsity' twice"),
])
def test_duplicate_step_fields_are_refused(user_error, model_path, args, fragment):
    user_error(["compress", model_path, *args, "-o", "x.wlz"], fragment)


def test_duplicate_model_args_are_refused(user_error):
    user_error(["train", "--model", "mlp", "--dataset", "digits", "--model-arg", "hidden=[8]", "--model-arg",
                "hidden=[16]", "-o", "a.wlz"], "'hidden' is given twice")


def test_a_duplicate_key_in_a_recipe_file_is_refused(user_error, work, model_path):
    (work / "r.yaml").write_text("steps:\n  - prune.magnitude: {sparsity: 0.5, sparsity: 0.9}\n")
    user_error(["compress", model_path, "--recipe", "r.yaml", "-o", "x.wlz"], "r.yaml", "'sparsity' is given twice")


TRAIN = ("train", "--model", "mlp", "--dataset", "digits", "--epochs", "1", "--quiet", "-o", "a.wlz")
HUGE = "99999999999999999999999"


@pytest.mark.parametrize("value", [HUGE, "-1", str(2**32)])
@pytest.mark.parametrize("command", ["train", "compress", "search"])
def test_a_seed_out_of_range_is_one_error(user_error, model_path, command, value):
    args = {"train": TRAIN, "compress": ("compress", model_path, "--int8", "-o", "x.onnx"),
            "search": ("search", model_path, "--max-drop", "1", "-o", "x.wlz")}[command]
    user_error([*args, f"--seed={value}"], "--seed")


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "0", "-0.1", "1e300", "11"])
def test_a_learning_rate_that_is_not_a_positive_finite_number_is_refused_at_once(user_error, value):
    user_error([*TRAIN, f"--lr={value}"], "--lr")  # 1e300 is finite but overflows float32 in the optimizer


@pytest.mark.parametrize("step", ["prune.magnitude:lr=inf", "prune.magnitude:lr=1e300", "quantize.qat:lr=nan"])
def test_a_techniques_learning_rate_out_of_range_is_refused_at_once(user_error, model_path, step):
    user_error(["compress", model_path, "--step", step, "-o", "x.wlz"], "lr")


@pytest.mark.parametrize("option, value", [("--threads", "100000"), ("--repeats", "99999999999999999999"),
                                           ("--threads", "0"), ("--repeats", "0")])
def test_compress_checks_timing_options_before_writing_anything(user_error, model_path, option, value):
    user_error(["compress", model_path, "--step", "prune.magnitude:finetune_epochs=0", "-o", "th.wlz", option, value],
               option, "must be a whole number from 1 to")


@pytest.mark.parametrize("option, value", [("--epochs", "-1"), ("--epochs", "1001"), ("--trials", "0"),
                                           ("--trials", HUGE)])
def test_search_checks_its_counts_before_any_trial(user_error, model_path, option, value):
    user_error(["search", model_path, "--max-drop", "1", "-o", "x.wlz", option, value], option)


@pytest.mark.parametrize("option, value", [("--workers", HUGE), ("--workers", "0"),
                                           ("--threads-per-worker", "100000"), ("--threads-per-worker", "0")])
def test_sweep_bounds_workers_and_threads(user_error, work, option, value):
    (work / "s.yaml").write_text("models: [mlp]\ndatasets: [digits]\nrecipes: [kd-int8]\n")
    user_error(["sweep", "s.yaml", "--db", "r.db", option, value], option)


@pytest.mark.parametrize("measure, fragment", [("{threads: 100000}", "threads"), ("{repeats: 99999999999}", "repeats"),
                                               ("{threads: true}", "threads")])
def test_a_study_bounds_its_measure_options(user_error, work, measure, fragment):
    (work / "s.yaml").write_text(f"models: [mlp]\ndatasets: [digits]\nrecipes: [kd-int8]\nmeasure: {measure}\n")
    user_error(["sweep", "s.yaml", "--db", "r.db"], "s.yaml", fragment)


def test_a_study_seed_out_of_range_is_refused(user_error, work):
    (work / "s.yaml").write_text(f"models: [mlp]\ndatasets: [digits]\nrecipes: [kd-int8]\nseeds: [{HUGE}]\n")
    user_error(["sweep", "s.yaml", "--db", "r.db"], "seeds", "2**32")


@pytest.mark.parametrize("step", ["quantize.ptq:bits=true", "quantize.ptq:layer_bits={0: false}",
                                  "prune.magnitude:sparsity=true"])
def test_true_or_false_where_a_number_is_expected_is_refused(user_error, model_path, step):
    user_error(["compress", model_path, "--step", step, "-o", "x.wlz"], "not true/false")


def test_true_where_a_number_is_expected_in_a_recipe_file_is_refused(user_error, work, model_path):
    (work / "r.yaml").write_text("steps:\n  - quantize.ptq: {bits: true}\n")
    user_error(["compress", model_path, "--recipe", "r.yaml", "-o", "x.wlz"], "bits", "not true/false")


def test_the_python_api_bounds_the_same_options(model_path, tmp_path):
    import wattless
    from wattless.api import timing_options
    from wattless.errors import ConfigError

    for threads, repeats in [(True, 1), (1, True), (10**6, 1), (1, 10**20), (1.5, 1)]:
        with pytest.raises(ConfigError, match="must be a whole number"):
            timing_options((1,), threads, repeats)
    with pytest.raises(ConfigError, match="--seed"):
        wattless.compress(model_path, None, tmp_path / "x.onnx", int8=True, seed=2**64)
    with pytest.raises(ConfigError, match="--epochs"):
        wattless.search(model_path, None, tmp_path / "x.wlz", max_drop=1, epochs=-1, db=tmp_path / "r.db")
    with pytest.raises(ConfigError, match="--lr"):
        wattless.api.train_config(lr=float("inf"))
    assert list(tmp_path.iterdir()) == []
