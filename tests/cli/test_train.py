"""``wattless train``: the file it writes, its JSON, determinism, regression, CSV data and model options."""

from __future__ import annotations

import json

import pytest


def test_train_writes_the_model_and_prints_one_json_object(trained):
    path, printed = trained
    assert path.is_file()
    assert printed["size_bytes"] == path.stat().st_size
    assert (printed["model"], printed["dataset"], printed["seed"]) == ("mlp", "digits", 0)
    assert printed["epochs_run"] == 2
    assert 0.6 < printed["test"]["accuracy"] <= 1.0  # 10 classes: chance is 0.1


def test_same_seed_gives_a_byte_identical_file_and_another_seed_does_not(cli_run, work, model_path, model_args):
    assert cli_run("train", *model_args, "-o", "again.wlz", "--json").code == 0
    assert (work / "again.wlz").read_bytes() == model_path.read_bytes()
    assert cli_run("train", *model_args, "--seed", "1", "-o", "seed1.wlz", "--json").code == 0
    assert (work / "seed1.wlz").read_bytes() != model_path.read_bytes()


def test_table_output_names_the_metric_and_the_file(cli_run, work):
    result = cli_run("train", "--model", "mlp", "--dataset", "digits", "--epochs", "1", "-o", "t.wlz", "--quiet")
    assert result.code == 0, result.err
    assert "test accuracy" in result.out and "t.wlz" in result.out and "%" in result.out
    with pytest.raises(json.JSONDecodeError):
        json.loads(result.out)


def test_regression_reports_rmse_mae_r2_and_measure_agrees(cli_run, work, fast):
    printed = cli_run("train", "--model", "mlp", "--dataset", "diabetes", "--epochs", "2", "-o", "r.wlz",
                      "--json").json()
    test = printed["test"]
    assert {"rmse", "mae", "r2"} <= test.keys() and "accuracy" not in test
    assert 0 < test["mae"] <= test["rmse"] and test["r2"] <= 1
    record = cli_run("measure", "r.wlz", "--engines", "torch", *fast, "--json").json()
    assert "accuracy" not in record and record["task"] == "regression"
    for key in ("rmse", "mae", "r2"):
        assert record[key] == pytest.approx(test[key], rel=1e-5)


def test_csv_with_a_categorical_column_and_a_target(cli_run, work, csv_path, fast, check_user_error):
    data = ("--dataset", f"csv:{csv_path}", "--target", "label")
    printed = cli_run("train", "--model", "mlp", *data, "--epochs", "3", "--lr", "0.01", "-o", "c.wlz",
                      "--json").json()
    assert printed["dataset"] == "csv:table.csv"
    assert printed["test"]["accuracy"] > 0.6  # two classes; the label is a function of x1 and color
    info = cli_run("inspect", "c.wlz", "--json").json()
    assert info["model"]["input_shape"] == [5]  # x1, x2 standardized + color one-hot over 3 values
    assert info["model"]["num_outputs"] == 2
    record = cli_run("measure", "c.wlz", *data, "--engines", "torch", *fast, "--json").json()
    assert record["accuracy"] == pytest.approx(printed["test"]["accuracy"])
    # the model names only csv:table.csv, not where the file is: measuring it needs --dataset and --target
    check_user_error(cli_run("measure", "c.wlz", "--engines", "torch", *fast), "--dataset", "--target")


def test_model_arg_sets_the_hidden_layers(cli_run, work):
    result = cli_run("train", "--model", "mlp", "--dataset", "digits", "--epochs", "1", "--model-arg",
                     "hidden=[16,8]", "-o", "h.wlz", "--json")
    assert result.code == 0, result.err
    info = cli_run("inspect", "h.wlz", "--json").json()
    assert info["model"]["kwargs"]["hidden"] == [16, 8]
    linear = [(layer["weight_numel"], layer["params"]) for layer in info["layers"] if layer["type"] == "Linear"]
    assert linear == [(64 * 16, 64 * 16 + 16), (16 * 8, 16 * 8 + 8), (8 * 10, 8 * 10 + 10)]
    assert info["params"] == 1040 + 136 + 90


def test_force_overwrites_an_existing_output(cli_run, work):
    (work / "f.wlz").write_bytes(b"old")
    result = cli_run("train", "--model", "mlp", "--dataset", "digits", "--epochs", "1", "-o", "f.wlz",
                     "--force", "--json")
    assert result.code == 0, result.err
    assert cli_run("inspect", "f.wlz", "--json").json()["size_bytes"] == (work / "f.wlz").stat().st_size > 3


def test_trust_code_trains_a_users_own_factory(cli_run, work, user_factory_module):
    name = f"{user_factory_module}:tiny"
    result = cli_run("train", "--model", name, "--dataset", "digits", "--epochs", "1", "-o", "u.wlz", "--json",
                     "--trust-code")
    assert result.code == 0, result.err
    info = cli_run("inspect", "u.wlz", "--json", "--trust-code").json()
    assert info["model"]["name"] == name and info["params"] == 64 * 10 + 10
