"""``wattless export``, ``import``, ``inspect`` and ``list``."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

import wattless
from wattless.models import build_model

SPEC = {"name": "mlp", "kwargs": {"hidden": [16]}, "input_shape": [64], "num_outputs": 10}
ARCH = ("--model", "mlp", "--model-arg", "hidden=[16]", "--dataset", "digits")


class _TouchOnUnpickle:
    """Unpickling this creates ``path``: proof that a pickle ran code."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return open, (self.path, "w")


def test_export_fp32_then_measure_without_dataset(cli_run, work, model_path, trained, fast):
    result = cli_run("export", model_path, "--format", "onnx", "-o", "f.onnx")
    assert (result.code, result.out) == (0, "") and "f.onnx" in result.err
    record = cli_run("measure", "f.onnx", *fast, "--json").json()  # data set from the file's metadata
    assert (record["dataset"], record["precision"], record["model"]) == ("digits", "fp32", "mlp")
    assert record["accuracy"] == pytest.approx(trained[1]["test"]["accuracy"], abs=0.003)
    assert record["size_bytes"] == (work / "f.onnx").stat().st_size
    assert record["params"] == 64 * 32 + 32 + 32 * 10 + 10


def test_export_int8_then_measure_without_dataset(cli_run, work, model_path, trained, fast):
    assert cli_run("export", model_path, "--int8", "--dataset", "digits", "-o", "q.onnx").code == 0
    record = cli_run("measure", "q.onnx", *fast, "--json").json()
    assert (record["dataset"], record["precision"]) == ("digits", "int8")
    assert abs(record["accuracy"] - trained[1]["test"]["accuracy"]) <= 0.03
    assert record["size_bytes"] == (work / "q.onnx").stat().st_size
    assert record["recipe"][-1]["technique"] == "quantize.int8"


@pytest.fixture
def weights(work) -> dict[str, torch.Tensor]:
    """A 64-16-10 MLP's state_dict, saved as state_dict.pt and as weights.safetensors."""
    torch.manual_seed(0)
    state = build_model(SPEC).state_dict()
    torch.save(state, work / "state_dict.pt")
    save_file({k: v.contiguous() for k, v in state.items()}, work / "weights.safetensors")
    return state


@pytest.mark.parametrize("source", ["state_dict.pt", "weights.safetensors"])
def test_import_plain_weights_then_measure(cli_run, work, weights, source, fast):
    result = cli_run("import", source, *ARCH, "-o", "imported.wlz")
    assert (result.code, result.out) == (0, ""), result.err
    loaded = wattless.load(work / "imported.wlz")
    for name, tensor in weights.items():
        assert torch.equal(loaded.module.state_dict()[name], tensor)
    record = cli_run("measure", "imported.wlz", "--engines", "torch", *fast, "--json").json()
    assert (record["model"], record["dataset"]) == ("mlp", "digits")
    assert record["params"] == 64 * 16 + 16 + 16 * 10 + 10
    assert 0 <= record["accuracy"] <= 1
    direct = cli_run("measure", source, *ARCH, "--engines", "torch", *fast, "--json").json()  # no import step
    assert direct["accuracy"] == record["accuracy"] and direct["params"] == record["params"]


def test_state_dict_and_safetensors_import_to_the_same_model(cli_run, work, weights):
    for source, out in (("state_dict.pt", "a.wlz"), ("weights.safetensors", "b.wlz")):
        assert cli_run("import", source, *ARCH, "-o", out).code == 0
    a, b = wattless.load(work / "a.wlz").module.state_dict(), wattless.load(work / "b.wlz").module.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_import_refuses_a_pickled_whole_model(user_error, tmp_path_factory):
    folder = tmp_path_factory.mktemp("pickles")
    torch.save(build_model(SPEC), folder / "whole.pt")
    user_error(["import", folder / "whole.pt", *ARCH, "-o", "w.wlz"], "whole.pt", "state_dict")


def test_import_never_runs_code_from_a_pickle(user_error, tmp_path_factory):
    folder = tmp_path_factory.mktemp("evil")
    marker = folder / "code-ran"
    torch.save({"fc.weight": _TouchOnUnpickle(marker)}, folder / "evil.pt")
    user_error(["import", folder / "evil.pt", *ARCH, "-o", "e.wlz"], "evil.pt")
    assert not marker.exists()


def test_pickle_refusal_is_plain_text(cli_run, work, tmp_path_factory):
    folder = tmp_path_factory.mktemp("pickles")
    torch.save(build_model(SPEC), folder / "whole.pt")
    result = cli_run("import", folder / "whole.pt", *ARCH, "-o", "w.wlz")
    assert result.code == 2
    assert "\x1b" not in result.err


def test_import_of_weights_for_another_architecture_is_a_user_error(user_error, work, weights):
    user_error(["import", "state_dict.pt", "--model", "mlp", "--dataset", "digits", "-o", "x.wlz"],
               "state_dict.pt", "--model")


def test_inspect_json_and_table(cli_run, model_path):
    info = cli_run("inspect", model_path, "--json").json()
    assert info["size_bytes"] == model_path.stat().st_size
    assert info["model"] == {"name": "mlp", "kwargs": {"hidden": [32]}, "input_shape": [64], "num_outputs": 10}
    assert (info["task"], info["dataset"], info["seed"], info["recipe"]) == ("classification", "digits", 0, [])
    assert info["macs"] == sum(layer["macs"] for layer in info["layers"]) == 64 * 32 + 32 * 10
    table = cli_run("inspect", model_path)
    assert table.code == 0 and "mlp" in table.out and "digits" in table.out and "2,410" in table.out


def test_list_shows_every_registry(cli_run):
    result = cli_run("list")
    assert result.code == 0
    lines = dict(line.split(": ", 1) for line in result.out.strip().splitlines())
    assert lines.keys() == {"models", "datasets", "techniques", "engines", "recipes"}
    assert set(lines["engines"].split(", ")) == {"torch", "onnxruntime", "int8", "native"}
    assert {"deep-compression", "kd-pruned-student-int8"} <= set(lines["recipes"].split(", "))
    assert {"mlp", "lenet300"} <= set(lines["models"].split(", "))
    assert {"digits", "diabetes", "breast-cancer", "csv:PATH"} <= set(lines["datasets"].split(", "))
    assert "prune.magnitude" in lines["techniques"]
    only = cli_run("list", "models")
    assert only.code == 0 and only.out.startswith("models: ") and only.out.count("\n") == 1
