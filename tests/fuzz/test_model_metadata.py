"""Fuzzing `.wlz` model metadata: a well-formed file whose metadata fields are forged with values of every JSON type
(issue 17, item 3: ``model.kwargs: "zzz"``, ``recipe: null``, ``dataset: "zzz"``, ``num_outputs: -7``, ...), read by
``inspect``, ``measure``, ``export`` and ``compress``: each succeeds or refuses with one error line."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from fuzzkit import Shown, edited, fuzz_settings, is_finite_number, metadata_edits
from hypothesis import given
from hypothesis import strategies as st

from wattless.artifact import read_artifact, write_artifact

pytestmark = pytest.mark.fuzz

CHEAP = {
    "inspect": ("inspect", "m.wlz"),
    "measure": ("measure", "m.wlz", "--engines", "torch", "--batch", "1", "--repeats", "1", "--json"),
}
SLOW = {
    "export": ("export", "m.wlz", "-o", "out.onnx"),
    "compress": ("compress", "m.wlz", "--step", "prune.magnitude:sparsity=0.5,finetune_epochs=0", "-o", "out.wlz",
                 "--batch", "1", "--repeats", "1", "--json"),
}
@pytest.fixture(scope="module")
def seed_file(tiny_wlz) -> Shown:
    """The seed model's tensors and metadata (as ``.value``), read by wattless' own reader."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "m.wlz"
        path.write_bytes(tiny_wlz)
        return Shown(read_artifact(path), "the seed model's tensors and metadata")


def forged_bytes(seed_file, edits) -> bytes:
    """The seed file with its metadata edited (the tensors untouched): a well-formed file wattless could write."""
    tensors, meta = seed_file.value
    meta = edited(meta, edits)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "m.wlz"
        write_artifact(path, tensors, meta)
        return path.read_bytes()


def check_record(command: str, result) -> None:
    """A successful ``--json`` run prints one record whose ratio is a positive number (not "-0.00x")."""
    if result.code == 0 and command in ("measure", "compress"):
        record = json.loads(result.out)
        ratio = record.get("compression_ratio")
        assert ratio is None or (is_finite_number(ratio) and ratio > 0), f"compression_ratio {ratio!r}"


ISSUE_CASES = [  # issue 17, item 3: each crashed at least one command
    [(("model", "kwargs"), "zzz", False)],
    [(("recipe",), None, False)],
    [(("dataset",), "zzz", False)],
    [(("model", "num_outputs"), -7, False)],
    [(("seed",), "NaN", False)],
    [(("dataset", "name"), 7, False)],
    [(("model", "input_shape"), "zzz", False)],
    [(("original", "size_bytes_fp32"), -5, False)],
]


@fuzz_settings(20)
@given(command=st.sampled_from(sorted(CHEAP)), data=st.data())
def test_forged_metadata_inspect_measure(hostile, seed_file, command, data):
    edits = data.draw(metadata_edits(seed_file.value[1]), label="edits")
    result = hostile(CHEAP[command], {"m.wlz": forged_bytes(seed_file, edits)})
    check_record(command, result)


@pytest.mark.parametrize(("command", "edits"), [
    (command, edits) for edits in ISSUE_CASES for command in sorted(CHEAP) + sorted(SLOW)
    if not (command == "export" and edits[0][0] in (("seed",), ("original", "size_bytes_fp32")))  # unread there
], ids=lambda value: value if isinstance(value, str) else ".".join(map(str, value[0][0])))
def test_the_issues_forged_fields(hostile, seed_file, command, edits):
    """The issue's cases, on every command that reads a model file."""
    result = hostile({**CHEAP, **SLOW}[command], {"m.wlz": forged_bytes(seed_file, edits)})
    check_record(command, result)


@fuzz_settings(4)
@given(command=st.sampled_from(sorted(SLOW)), data=st.data())
def test_forged_metadata_export_compress(hostile, seed_file, command, data):
    edits = data.draw(metadata_edits(seed_file.value[1]), label="edits")
    result = hostile(SLOW[command], {"m.wlz": forged_bytes(seed_file, edits)})
    check_record(command, result)
