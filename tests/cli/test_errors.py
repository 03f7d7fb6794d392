"""User errors: exit code 2, one line on stderr starting with ``error:``, no traceback, no file written.

Each case runs in an empty folder; ``{model}`` and friends stand for the session's files.
"""

from __future__ import annotations

import pytest

MEASURE = ("--engines", "torch", "--batch", "1", "--repeats", "1")
PRUNE = ("--step", "prune.magnitude:finetune_epochs=0")
TRAIN = ("--epochs", "1", "--quiet")

CASES = {
    "unknown model": (["train", "--model", "nope", "--dataset", "digits", *TRAIN, "-o", "a.wlz"], ["'nope'"]),
    "unknown data set": (["train", "--model", "mlp", "--dataset", "nope", *TRAIN, "-o", "a.wlz"], ["'nope'"]),
    "unknown data set (measure)": (["measure", "{model}", "--dataset", "nope", *MEASURE], ["'nope'"]),
    "missing model file": (["measure", "missing.wlz", "--dataset", "digits", *MEASURE], ["missing.wlz"]),
    "missing model file (compress)": (["compress", "missing.wlz", "--int8", "-o", "x.onnx"], ["missing.wlz"]),
    "random bytes .wlz": (["measure", "{random_wlz}", *MEASURE], ["random.wlz", "not a valid"]),
    "truncated .wlz": (["measure", "{truncated_wlz}", *MEASURE], ["truncated.wlz"]),
    "truncated .wlz (compress)": (["compress", "{truncated_wlz}", "--int8", "-o", "x.onnx"], ["truncated.wlz"]),
    "random bytes .onnx": (["measure", "{random_onnx}", "--dataset", "digits", *MEASURE], ["random.onnx"]),
    "NaN weights (measure)": (["measure", "{nan_wlz}", *MEASURE], ["nan.wlz", "NaN"]),
    "NaN weights (compress)": (["compress", "{nan_wlz}", "--int8", "-o", "n.onnx"], ["nan.wlz", "NaN"]),
    "NaN weights (export)": (["export", "{nan_wlz}", "-o", "n.onnx"], ["nan.wlz", "NaN"]),
    "unknown CSV target": (["train", "--model", "mlp", "--dataset", "csv:{csv}", "--target", "nope", *TRAIN,
                            "-o", "c.wlz"], ["'nope'", "label"]),
    "CSV without --target": (["train", "--model", "mlp", "--dataset", "csv:{csv}", *TRAIN, "-o", "c.wlz"],
                             ["--target"]),
    "--target on a built-in data set": (["train", "--model", "mlp", "--dataset", "digits", "--target", "y",
                                         *TRAIN, "-o", "c.wlz"], ["--target"]),
    "missing CSV file": (["measure", "{model}", "--dataset", "csv:nofile.csv", "--target", "y", *MEASURE],
                         ["nofile.csv"]),
    "wrong input shape": (["measure", "{model}", "--dataset", "breast-cancer", *MEASURE], ["breast-cancer", "[64]"]),
    "wrong input shape (compress)": (["compress", "{model}", "--dataset", "breast-cancer", "--int8", "-o", "x.onnx"],
                                     ["breast-cancer"]),
    "model for images on tabular data": (["train", "--model", "lenet5", "--dataset", "digits", *TRAIN,
                                          "-o", "l.wlz"], ["lenet5"]),
    "unknown technique": (["compress", "{model}", "--step", "nope", "-o", "p.wlz"], ["'nope'", "prune.magnitude"]),
    "unknown field in --step": (["compress", "{model}", "--step", "prune.magnitude:sparsiti=0.5", "-o", "p.wlz"],
                                ["sparsiti", "sparsity"]),
    "--step without =": (["compress", "{model}", "--step", "prune.magnitude:sparsity", "-o", "p.wlz"],
                         ["key=value"]),
    "sparsity above 1": (["compress", "{model}", "--step", "prune.magnitude:sparsity=1.5", "-o", "p.wlz"],
                         ["sparsity"]),
    "sparsity below 0": (["compress", "{model}", "--step", "prune.magnitude:sparsity=-0.1", "-o", "p.wlz"],
                         ["sparsity"]),
    "--int8 with -o .wlz": (["compress", "{model}", "--int8", "-o", "x.wlz"], [".onnx"]),
    "nothing to do": (["compress", "{model}", "-o", "x.wlz"], ["--int8", "--step"]),
    "--step and --recipe": (["compress", "{model}", *PRUNE, "--recipe", "r.yaml", "-o", "x.wlz"], ["--recipe"]),
    "missing recipe file": (["compress", "{model}", "--recipe", "r.yaml", "-o", "x.wlz"], ["r.yaml"]),
    "bad --calibration": (["compress", "{model}", "--int8", "--calibration", "nope", "-o", "x.onnx"], ["'nope'"]),
    "missing output folder": (["compress", "{model}", *PRUNE, "-o", "nodir/p.wlz"], ["nodir"]),
    "missing output folder (train)": (["train", "--model", "mlp", "--dataset", "digits", *TRAIN, "-o", "no/a.wlz"],
                                      ["'no'"]),
    "train -o .onnx": (["train", "--model", "mlp", "--dataset", "digits", *TRAIN, "-o", "a.onnx"], [".wlz"]),
    "train bad --epochs": (["train", "--model", "mlp", "--dataset", "digits", "--epochs", "-1", "-o", "a.wlz"],
                           ["--epochs"]),
    "train bad --optimizer": (["train", "--model", "mlp", "--dataset", "digits", "--optimizer", "nope",
                               "-o", "a.wlz"], ["--optimizer"]),
    "--model-arg without =": (["train", "--model", "mlp", "--dataset", "digits", *TRAIN, "--model-arg", "hidden",
                               "-o", "a.wlz"], ["--model-arg", "key=value"]),
    "--model-arg unknown option": (["train", "--model", "mlp", "--dataset", "digits", *TRAIN, "--model-arg",
                                    "nope=3", "-o", "a.wlz"], ["nope"]),
    "export --format": (["export", "{model}", "--format", "tflite", "-o", "x.onnx"], ["tflite"]),
    "plain weights without --model": (["measure", "weights.pt", "--dataset", "digits", *MEASURE], ["--model"]),
    "bad --task": (["measure", "{model}", "--task", "nope", *MEASURE], ["'nope'"]),
    "list what": (["list", "nope"], ["'nope'"]),
}
BAD_BATCHES = ["0", "a,b", "-1", ",", "1.5", "1,,2", "1,", "99999999999999999999"]
BAD_ENGINES = ["foo", "", "torch,gpu", ","]


@pytest.fixture
def paths(model_path, bad_files, csv_path) -> dict[str, str]:
    """``{model}``, ``{csv}``, ``{random_wlz}``, ``{truncated_wlz}``, ``{nan_wlz}``, ``{random_onnx}``."""
    bad = {name.replace(".", "_"): str(path) for name, path in bad_files.items()}
    return {"model": str(model_path), "csv": str(csv_path), **bad}


@pytest.mark.parametrize("case", sorted(CASES))
def test_user_error(user_error, work, paths, case):
    args, fragments = CASES[case]
    if "--recipe" in args and "--step" in args:
        (work / "r.yaml").write_text("steps: [prune.magnitude]\n")
    user_error([arg.format(**paths) for arg in args], *fragments)


@pytest.mark.parametrize("batch", BAD_BATCHES)
@pytest.mark.parametrize("command", ["measure", "compress"])
def test_bad_batch(user_error, model_path, command, batch):
    extra = ["--int8", "-o", "x.onnx"] if command == "compress" else []
    user_error([command, model_path, f"--batch={batch}", *extra], "--batch")


@pytest.mark.parametrize("engines", BAD_ENGINES)
def test_bad_engines(user_error, model_path, engines):
    user_error(["measure", model_path, f"--engines={engines}"], "--engines")


@pytest.mark.parametrize("content, fragment", [
    ("steps:\n  - prune.magnitud: {}\n", "prune.magnitud"),
    ("steps:\n  - prune.magnitude: {sparsiti: 0.5}\n", "sparsiti"),
    ("steps:\n  - quantize.int8: {}\n  - prune.magnitude: {}\n", "last"),
    ("steps: [unclosed\n", "YAML"),
    ("stepz: []\n", "steps"),
])
def test_bad_recipe(user_error, work, model_path, content, fragment):
    (work / "r.yaml").write_text(content)
    user_error(["compress", model_path, "--recipe", "r.yaml", "-o", "x.onnx"], fragment)


@pytest.mark.parametrize("option, value", [("--threads", "0"), ("--threads", "100000"), ("--repeats", "0"),
                                           ("--repeats", "99999999999")])
def test_timing_options_out_of_range_are_one_error_line(user_error, paths, option, value):
    user_error(["measure", paths["model"], option, value], option, "must be a whole number from 1 to")


@pytest.mark.parametrize("args", [
    ["train", "--model", "mlp", "--dataset", "digits"],  # no -o
    ["compress", "{model}", "--int8"],  # no -o
    ["import", "w.pt", "--dataset", "digits", "-o", "w.wlz"],  # no --model
    ["measure", "{model}", "--threads", "zero"],
    ["measure", "{model}", "--no-such-option"],
    ["frobnicate"],
])
def test_usage_errors_from_typer_exit_2(cli_run, work, paths, args):
    result = cli_run(*[arg.format(**paths) for arg in args])
    assert result.code == 2, result.err
    assert result.out == "" and "Traceback" not in result.err
    assert result.err.startswith("error: ") and result.err.count("\n") == 1  # one line, like every user error
    assert "--help)" in result.err  # and where to read the usage
    assert list(work.iterdir()) == []
