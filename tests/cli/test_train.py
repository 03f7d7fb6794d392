"""``wattless train``: the file it writes, its JSON, determinism, regression, CSV data and model options."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
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


@pytest.mark.skipif(importlib.util.find_spec("transformers") is None,
                    reason="Hugging Face transformers not installed (pip install 'wattless[hf]')")
def test_a_hugging_face_vit_trains_on_an_image_folder_and_is_measured(cli_run, work, fast):
    from PIL import Image

    rng = np.random.default_rng(0)
    for label, name in enumerate(("cat", "dog")):
        (work / "pets" / name).mkdir(parents=True)
        for i in range(10):
            pixels = rng.integers(0, 128, size=(8, 8)) + 100 * label
            Image.fromarray(pixels.astype(np.uint8), "L").save(work / "pets" / name / f"{i}.png")
    dataset = f"folder:{work / 'pets'}?size=8x8&channels=1"
    result = cli_run("train", "--model", "hf:vit", "--dataset", dataset, "--model-arg", "hidden_size=16",
                     "--epochs", "1", "-o", "vit.wlz", "--json")
    assert result.code == 0, result.err
    info = cli_run("inspect", "vit.wlz", "--json").json()
    assert info["model"]["name"] == "hf:vit" and info["model"]["input_shape"] == [1, 8, 8]
    record = cli_run("measure", "vit.wlz", "--json", "--engines", "torch,onnxruntime", *fast).json()
    assert {entry["engine"] for entry in record["latency_ms"]} == {"torch", "onnxruntime"}
    assert 0 <= record["accuracy"] <= 1


@pytest.fixture
def digit_images(monkeypatch):
    """A data set ``digit-images``: the digits as 1x8x8 pixel images in [0, 1], standardised, so that image
    augmentations (RandAugment too) apply."""
    import dataclasses

    from wattless.data import _dataset, load_dataset

    def load(*, data_dir=None, split_seed=0):
        data = load_dataset("digits", split_seed=split_seed)
        prep = data.preprocessing  # per-column standardisation of pixels 0..16: undo it, then one mean and std
        raw = {s: getattr(data, f"X_{s}") * np.asarray(prep["std"], np.float32) + np.asarray(prep["mean"], np.float32)
               for s in ("train", "val", "test")}
        pixels = {s: (x / 16).reshape(-1, 1, 8, 8).astype(np.float32) for s, x in raw.items()}
        mean, std = float(pixels["train"].mean()), float(pixels["train"].std())
        return dataclasses.replace(data, name="digit-images",
                                   preprocessing={"kind": "standardize", "mean": mean, "std": std},
                                   **{f"X_{s}": (x - mean) / std for s, x in pixels.items()})

    monkeypatch.setitem(_dataset._REGISTRY, "digit-images", load)
    return ("--model", "mlp", "--model-arg", "hidden=[32]", "--dataset", "digit-images", "--lr", "0.01")


def test_augmentation_options_train_reproducibly_and_are_recorded(cli_run, work, digit_images):
    import wattless

    args = (*digit_images, "--epochs", "2", "--augment", "flip,crop,cutout", "--crop-padding", "1", "--cutout", "3",
            "--label-smoothing", "0.1", "--warmup-epochs", "1", "--json")
    printed = cli_run("train", *args, "-o", "a.wlz").json()
    assert printed["test"]["accuracy"] > 0.5
    assert cli_run("train", *args, "-o", "b.wlz").code == 0
    assert (work / "a.wlz").read_bytes() == (work / "b.wlz").read_bytes()
    config = wattless.load("a.wlz").meta["train"]["config"]
    assert config["augment"] == ["crop", "flip", "cutout"]
    assert (config["crop_padding"], config["cutout"], config["label_smoothing"], config["warmup_epochs"]) == \
        (1, 3, 0.1, 1)
    plain = cli_run("train", *digit_images, "--epochs", "2", "-o", "p.wlz", "--json").json()
    assert plain["test"] != printed["test"]


def test_randaugment_and_onecycle(cli_run, work, digit_images):
    pytest.importorskip("kornia")
    args = (*digit_images, "--epochs", "2", "--batch-size", "256", "--augment", "randaugment", "--schedule",
            "onecycle", "--json")
    printed = cli_run("train", *args, "-o", "r.wlz").json()
    assert printed["epochs_run"] == 2 and printed["test"]["accuracy"] > 0.3  # 10 classes: chance is 0.1
    assert cli_run("train", *args, "-o", "r2.wlz").code == 0
    assert (work / "r.wlz").read_bytes() == (work / "r2.wlz").read_bytes()


def test_default_options_record_only_the_original_config_fields(cli_run, work, model_path):
    import wattless

    config = wattless.load(model_path).meta["train"]["config"]
    assert set(config) == {"epochs", "batch_size", "lr", "optimizer", "momentum", "weight_decay", "schedule",
                           "patience", "seed"}  # so files trained without the new options keep their bytes


@pytest.mark.parametrize(("options", "fragments"), [
    (("--augment", "crop"), ["(channels, height, width)", "(64,)"]),
    (("--augment", "crop,mixup"), ["--augment", "'mixup'"]),
    (("--cutout", "4"), ["--cutout", "--augment cutout"]),
    (("--crop-padding", "2", "--augment", "flip"), ["--crop-padding", "--augment crop"]),
    (("--warmup-epochs", "2"), ["--warmup-epochs", "fewer than epochs=2"]),
    (("--schedule", "onecycle", "--warmup-epochs", "1"), ["--warmup-epochs", "onecycle"]),
    (("--schedule", "linear"), ["--schedule", "'linear'", "onecycle"]),
    (("--label-smoothing", "1"), ["--label-smoothing", "less than 1"]),
])
def test_bad_training_options_exit_2_with_one_line(user_error, options, fragments):
    user_error(["train", "--model", "mlp", "--dataset", "digits", "--epochs", "2", *options, "-o", "x.wlz"],
               *fragments)


def test_label_smoothing_is_refused_for_regression(user_error):
    user_error(["train", "--model", "mlp", "--dataset", "diabetes", "--epochs", "1", "--label-smoothing", "0.1",
                "-o", "x.wlz"], "label smoothing", "'diabetes' is a regression task")


def test_randaugment_without_kornia_names_the_extra(user_error, digit_images, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "kornia.augmentation.auto", None)
    user_error(["train", *digit_images, "--epochs", "1", "--augment", "randaugment", "-o", "x.wlz"],
               "pip install 'wattless[augment]'")
