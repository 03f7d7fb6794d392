"""User errors about files: existing outputs, output = input, user code without --trust-code; and known bugs."""

from __future__ import annotations

import shutil
import sys

import pytest
import torch

import wattless

TRAIN = ("--model", "mlp", "--dataset", "digits", "--epochs", "1", "--quiet")


@pytest.fixture
def state_dict_pt(work, model_path):
    torch.save(wattless.load(model_path).module.state_dict(), work / "w.pt")
    return work / "w.pt"


@pytest.mark.parametrize("command", ["train", "compress", "export", "import"])
def test_existing_output_is_left_byte_identical_without_force(user_error, work, model_path, state_dict_pt, command):
    out = work / ("out.onnx" if command == "export" else "out.wlz")
    out.write_bytes(b"precious bytes the user wants to keep")
    args = {
        "train": ["train", *TRAIN, "-o", out],
        "compress": ["compress", model_path, "--step", "prune.magnitude:finetune_epochs=0", "-o", out],
        "export": ["export", model_path, "-o", out],
        "import": ["import", state_dict_pt, "--model", "mlp", "--model-arg", "hidden=[32]", "--dataset", "digits",
                   "-o", out],
    }[command]
    user_error(args, "already exists", "--force")  # user_error also checks that every file is unchanged


@pytest.mark.parametrize("force", [[], ["--force"]])
@pytest.mark.parametrize("spelling", ["m.wlz", "./m.wlz", "sub/../m.wlz"])
def test_output_equal_to_input_is_refused_even_with_force(user_error, work, model_path, spelling, force):
    shutil.copy(model_path, work / "m.wlz")
    (work / "sub").mkdir()
    user_error(["compress", "m.wlz", "--step", "prune.magnitude:finetune_epochs=0", "-o", spelling, *force],
               "input")


@pytest.fixture
def user_model_file(user_factory_module, model_path, tmp_path_factory):
    """A .wlz whose architecture is ``<module>:tiny``, the user's own code, trained weights or not."""
    model = wattless.load(model_path)
    name = f"{user_factory_module}:tiny"
    module = __import__(user_factory_module).tiny((64,), 10)
    del sys.modules[user_factory_module]  # the refusal test checks that wattless does not import it
    meta = {**model.meta, "model": {"name": name, "kwargs": {}, "input_shape": [64], "num_outputs": 10}}
    path = tmp_path_factory.mktemp("usermodel") / "user.wlz"
    wattless.save(wattless.WattlessModel(module, meta), path)
    return path, user_factory_module


@pytest.mark.parametrize("command", ["measure", "inspect", "export", "compress"])
def test_user_code_is_refused_without_trust_code(user_error, user_model_file, command):
    path, module_name = user_model_file
    args = {"measure": ["--engines", "torch"], "inspect": [], "export": ["-o", "u.onnx"],
            "compress": ["--int8", "-o", "u.onnx"]}[command]
    user_error([command, path, *args], "--trust-code", module_name)
    assert module_name not in sys.modules  # nothing of the user's code was imported


def test_user_code_is_accepted_with_trust_code(cli_run, work, user_model_file):
    path, module_name = user_model_file
    record = cli_run("measure", path, "--trust-code", "--batch", "1", "--repeats", "2", "--json").json()
    assert record["model"] == f"{module_name}:tiny" and record["params"] == 64 * 10 + 10
    assert 0 <= record["accuracy"] <= 1
    assert cli_run("export", path, "--trust-code", "-o", "u.onnx").code == 0


def test_train_error_without_quiet_is_one_line(user_error):
    user_error(["train", "--model", "nope", "--dataset", "digits", "--epochs", "1", "-o", "a.wlz"], "'nope'")


def test_model_arg_that_is_not_yaml_is_a_user_error(user_error):
    user_error(["train", *TRAIN, "--model-arg", "hidden=[16", "-o", "a.wlz"], "--model-arg")


def test_model_arg_too_large_to_allocate_is_a_user_error(user_error):
    # 64 x 10**13 float32 weights need 2.6 PB, more than the address space: the allocation fails at once.
    user_error(["train", *TRAIN, "--model-arg", f"hidden=[{10**13}]", "-o", "a.wlz"], "mlp")


def test_export_int8_on_the_wrong_data_set_names_the_data_set(user_error, model_path):
    result = user_error(["export", model_path, "--int8", "--dataset", "breast-cancer", "-o", "x.onnx"])
    assert "breast-cancer" in result.err and ".tmp" not in result.err
