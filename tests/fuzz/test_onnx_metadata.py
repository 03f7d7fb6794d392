"""Fuzzing the ``wattless`` record an ONNX file carries in its ``metadata_props`` (issue 17, item 3: cut-off JSON, a
JSON list, 100,000 nested brackets, ``params: "many"``), read by ``measure``: it succeeds or refuses with one line."""

from __future__ import annotations

import json

import onnx
import pytest
from fuzzkit import HOSTILE_JSON, TEXTS, Shown, edited, fuzz_settings, is_finite_number, metadata_edits
from hypothesis import example, given
from hypothesis import strategies as st

pytestmark = pytest.mark.fuzz

MEASURE = ("measure", "m.onnx", "--engines", "onnxruntime", "--batch", "1", "--repeats", "1", "--json")


@pytest.fixture(scope="module")
def seed_model(tiny_onnx) -> Shown:
    """The seed ONNX model and its ``wattless`` metadata text (as ``.value``)."""
    model = onnx.load_from_string(tiny_onnx)
    return Shown((model, {prop.key: prop.value for prop in model.metadata_props}["wattless"]), "the seed ONNX model")


def with_props(model: onnx.ModelProto, props: dict[str, str]) -> bytes:
    """The model's bytes with its ``metadata_props`` replaced by ``props``."""
    forged = onnx.ModelProto()
    forged.CopyFrom(model)
    del forged.metadata_props[:]
    onnx.helper.set_model_props(forged, props)
    return forged.SerializeToString()


def records(seed_text: str) -> st.SearchStrategy[str]:
    """The ``wattless`` value: the seed record with fields forged, any JSON, cut-off JSON, bracket towers, text."""
    meta = json.loads(seed_text)
    return st.one_of(
        metadata_edits(meta).map(lambda edits: json.dumps(edited(meta, edits))),
        HOSTILE_JSON.map(json.dumps),
        st.integers(0, len(seed_text) - 1).map(lambda end: seed_text[:end]),
        st.tuples(st.sampled_from("[{"), st.sampled_from([990, 1000, 3000, 100_000]) | st.integers(1, 100_000),
                  st.booleans()).map(
            lambda t: t[0] * t[1] + ("]" if t[0] == "[" else "}") * (t[1] if t[2] else 0)),
        TEXTS,
    )


def check_record(result) -> None:
    if result.code == 0:
        ratio = json.loads(result.out).get("compression_ratio")
        assert ratio is None or (is_finite_number(ratio) and ratio > 0), f"compression_ratio {ratio!r}"


@fuzz_settings(20)
@given(data=st.data(), precision=st.none() | st.sampled_from(["fp32", "int8"]) | TEXTS,
       dataset=st.sampled_from([(), ("--dataset", "digits")]))
@example(data=None, precision=None, dataset=()).via("issue 17: the seed record as a JSON list")
def test_forged_onnx_metadata(hostile, seed_model, data, precision, dataset):
    model, seed_text = seed_model.value
    text = f"[{seed_text}]" if data is None else data.draw(records(seed_text), label="wattless")
    props = {"wattless": text} | ({"precision": precision} if precision is not None else {})
    check_record(hostile([*MEASURE, *dataset], {"m.onnx": with_props(model, props)}))


@pytest.mark.parametrize("text", [
    "cut", "[]", "[" * 100_000 + "]" * 100_000, "params-many", "size-negative",
])
def test_the_issues_onnx_records(hostile, seed_model, text):
    """The issue's cases (cut-off JSON, a JSON list, 100,000 nested brackets, ``params: "many"``) and a forged
    ``original.size_bytes_fp32: -5`` (which printed "-0.00x")."""
    model, seed_text = seed_model.value
    meta = json.loads(seed_text)
    text = {"cut": seed_text[: len(seed_text) // 2],
            "params-many": json.dumps({**meta, "params": "many"}),
            "size-negative": json.dumps({**meta, "original": {"size_bytes_fp32": -5, "model": "mlp"}})}.get(text, text)
    for dataset in ((), ("--dataset", "digits")):
        check_record(hostile([*MEASURE, *dataset], {"m.onnx": with_props(model, {"wattless": text})}))
