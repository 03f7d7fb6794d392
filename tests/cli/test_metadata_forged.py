"""Well-formed model files whose metadata fields hold the wrong types: every command that reads one refuses it with
one ``error:`` line naming the field (``wattless.artifact.metadata``), and writes nothing."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import onnx
import pytest

from wattless.artifact import read_artifact, write_artifact
from wattless.artifact.metadata import check_metadata
from wattless.errors import ArtifactError

FORGED = {"null": None, "string": "zzz", "negative": -7, "huge": 10**30, "nested list": [[1, [2]]], "NaN": "NaN"}
"""The values each field is forged with (the header's JSON cannot hold a real NaN: the parser refuses it)."""
FIELDS = {
    "model": FORGED,
    "model.name": {k: v for k, v in FORGED.items() if k not in ("string", "NaN")},  # a string: an unknown model
    "model.kwargs": FORGED,
    "model.input_shape": FORGED,
    "model.num_outputs": FORGED,
    "dataset": FORGED,
    "dataset.name": {k: v for k, v in FORGED.items() if k not in ("string", "NaN")},
    "dataset.input_shape": FORGED,
    "dataset.preprocessing.pixel_scale": {k: v for k, v in FORGED.items() if k != "huge"},
    "recipe": FORGED,
    "seed": {**FORGED, "negative": -(2**70)},  # a negative seed is a seed
    "task": FORGED,
    "train.config.batch_size": FORGED,
    "original.size_bytes_fp32": {**FORGED, "negative": -5},
}
CASES = [(field, kind) for field, kinds in FIELDS.items() for kind in kinds]
COMMANDS = ("measure", "compress", "export")
"""Each case runs ``inspect`` and one of these in turn (all four on every case would take the suite 40 s)."""


def _set(meta: dict, field: str, value: object) -> dict:
    meta = copy.deepcopy(meta)
    *parents, last = field.split(".")
    node = meta
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    return meta


@pytest.fixture(scope="module")
def stored(model_path):
    return read_artifact(model_path)


def _commands(path: Path, fast: tuple[str, ...]) -> dict[str, tuple]:
    return {"inspect": ("inspect", path),
            "measure": ("measure", path, "--engines", "torch", *fast),
            "compress": ("compress", path, "--step", "prune.magnitude:sparsity=0.5", "-o", "out.wlz", *fast),
            "export": ("export", path, "-o", "out.onnx")}


@pytest.mark.parametrize(("field", "kind", "command"), [(*case, COMMANDS[i % 3]) for i, case in enumerate(CASES)],
                         ids=[f"{f}={k}" for f, k in CASES])
def test_a_forged_field_is_one_error_naming_it(stored, work, user_error, fast, field, kind, command):
    """inspect and measure, compress or export: exit 2, one line naming the field, nothing written."""
    tensors, meta = stored
    path = work.parent / f"forged-{work.name}.wlz"
    write_artifact(path, tensors, _set(meta, field, FIELDS[field][kind]))
    commands = _commands(path, fast)
    for name in ("inspect", command):
        user_error(commands[name], f"metadata field {field.split('.')[0]}", "re-save the model with wattless")


def test_the_error_names_the_field_the_rule_and_the_value(stored, work, user_error):
    tensors, meta = stored
    write_artifact("model.wlz", tensors, _set(meta, "model.num_outputs", -7))
    user_error(("inspect", "model.wlz"), "error: model.wlz: metadata field model.num_outputs must be a positive "
                                         "integer (got -7); re-save the model with wattless")


def test_an_echoed_value_is_cut_short(stored, work, user_error):
    tensors, meta = stored
    write_artifact("model.wlz", tensors, _set(meta, "dataset.name", 7 * 10**3000))
    assert len(user_error(("inspect", "model.wlz")).err) < 300
    write_artifact("model.wlz", tensors, _set(meta, "task", "x" * 10**6))
    assert len(user_error(("inspect", "model.wlz")).err) < 300


def test_deep_nesting_is_refused_before_validation():
    deep: list = []
    for _ in range(200):
        deep = [deep]
    with pytest.raises(ArtifactError, match="nests deeper than 32 levels"):
        check_metadata({"model": {"name": "mlp", "input_shape": [4], "num_outputs": 2, "kwargs": {"x": deep}}}, "m")


def test_unknown_fields_are_kept_and_nulls_allowed_where_files_hold_them():
    meta = {"model": {"name": "mlp", "input_shape": [4], "num_outputs": 2, "output": None},
            "dataset": {"name": "x", "classes": None, "sizes": {}, "preprocessing": {}}, "future_field": [1]}
    assert check_metadata(meta, "m") is meta


@pytest.fixture(scope="module")
def exported(model_path, tmp_path_factory, cli_run) -> Path:
    path = tmp_path_factory.mktemp("onnx") / "m.onnx"
    assert cli_run("export", model_path, "-o", path).code == 0
    return path


def _forge_onnx(source: Path, out: Path, text: str) -> Path:
    model = onnx.load(source)
    props = {prop.key: prop.value for prop in model.metadata_props} | {"wattless": text}
    del model.metadata_props[:]
    onnx.helper.set_model_props(model, props)
    onnx.save(model, out)
    return out


def _onnx_meta(path: Path) -> dict:
    return json.loads({prop.key: prop.value for prop in onnx.load(path).metadata_props}["wattless"])


@pytest.mark.parametrize(("text", "fragment"), [
    (lambda good: good[: len(good) // 2], "not valid JSON"),
    (lambda good: "[1, 2]", "a JSON list, not an object"),
    (lambda good: "[" * 100_000 + "]" * 100_000, "not valid JSON"),
    (lambda good: json.dumps({**json.loads(good), "params": "many"}), "metadata field params"),
    (lambda good: json.dumps({**json.loads(good), "size_bytes_fp32": -5}), "metadata field size_bytes_fp32"),
    (lambda good: json.dumps({**json.loads(good), "size_bytes_fp32": float("nan")}), "NaN"),
    (lambda good: json.dumps({**json.loads(good), "dataset": "zzz"}), "metadata field dataset"),
    (lambda good: json.dumps({**json.loads(good), "model": {"input_shape": "x"}}), "metadata field model"),
], ids=["cut", "list", "nested", "params", "negative size", "NaN size", "dataset", "model"])
def test_forged_onnx_metadata_is_one_error(exported, work, user_error, fast, text, fragment):
    good = json.dumps(_onnx_meta(exported))
    path = _forge_onnx(exported, work.parent / f"forged-{work.name}.onnx", text(good))
    for extra in ((), ("--dataset", "digits")):
        user_error(("measure", path, "--engines", "onnxruntime", *fast, *extra), fragment, "re-export the model")


@pytest.mark.parametrize("kwargs", [{"hidden": [10**30]}, {"hidden": "zzz"}, {"hidden": [-7]}, {"zzz": 1},
                                    {"hidden": [[1]]}, {"dropout": "x" * 10_000}])
def test_forged_model_options_are_one_short_error(stored, work, user_error, kwargs):
    """Options the architecture refuses (here in a file's metadata): one line, however long the value."""
    tensors, meta = stored
    write_artifact("model.wlz", tensors, _set(meta, "model.kwargs", kwargs))
    assert len(user_error(("inspect", "model.wlz")).err) < 400
