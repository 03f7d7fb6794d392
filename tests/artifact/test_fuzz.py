"""Fuzzing the reader: whatever the bytes, it returns tensors or raises ArtifactError, nothing else."""

import json
import struct
import tempfile
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from wattless.artifact import read_artifact, read_metadata
from wattless.errors import ArtifactError

FUZZ = settings(max_examples=150, deadline=None)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@pytest.fixture(scope="module")
def valid_bytes(valid_file: Path) -> bytes:
    return valid_file.read_bytes()


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz") / "fuzzed.wlz"


def assert_reads_or_refuses(path: Path) -> None:
    """The property: both readers either succeed with well-formed results or raise ArtifactError."""
    try:
        tensors, metadata = read_artifact(path, max_tensor_bytes=2**20)
    except ArtifactError as error:
        assert "\n" not in str(error) and str(path) in str(error)
    else:
        assert isinstance(metadata, dict)
        assert all(isinstance(tensor, torch.Tensor) for tensor in tensors.values())
    try:
        assert isinstance(read_metadata(path), dict)
    except ArtifactError:
        pass


def assert_bytes_read_or_refused(data: bytes, path: Path) -> None:
    path.write_bytes(data)
    assert_reads_or_refuses(path)


@FUZZ
@given(data=st.binary(max_size=2000))
def test_random_bytes(scratch, data):
    assert_bytes_read_or_refused(data, scratch)


@FUZZ
@given(header=st.binary(max_size=300), rest=st.binary(max_size=300))
def test_random_header_with_a_plausible_length(scratch, header, rest):
    assert_bytes_read_or_refused(struct.pack("<Q", len(header)) + header + rest, scratch)


def test_every_truncation(valid_bytes):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "truncated.wlz"
        for length in range(len(valid_bytes)):
            path.write_bytes(valid_bytes[:length])
            with pytest.raises(ArtifactError):
                read_artifact(path)


@FUZZ
@given(flips=st.lists(st.integers(min_value=0), min_size=1, max_size=8))
def test_bit_flips(valid_bytes, scratch, flips):
    data = bytearray(valid_bytes)
    for flip in flips:
        bit = flip % (8 * len(data))
        data[bit // 8] ^= 1 << (bit % 8)
    assert_bytes_read_or_refused(bytes(data), scratch)


@FUZZ
@given(changes=st.dictionaries(st.integers(min_value=0), st.integers(0, 255), min_size=1, max_size=8))
def test_byte_changes(valid_bytes, scratch, changes):
    data = bytearray(valid_bytes)
    for position, value in changes.items():
        data[position % len(data)] = value
    assert_bytes_read_or_refused(bytes(data), scratch)


@FUZZ
@given(claimed=st.integers(min_value=0, max_value=2**64 - 1))
def test_any_header_length(valid_bytes, scratch, claimed):
    assert_bytes_read_or_refused(struct.pack("<Q", claimed) + valid_bytes[8:], scratch)


@FUZZ
@given(
    shape=st.lists(st.integers(min_value=-(2**70), max_value=2**70), max_size=80), dtype=st.text(max_size=10)
)
def test_forged_zstd_shapes(valid_file, scratch, read_stored, forge, shape, dtype):
    stored, file_metadata = read_stored(valid_file)
    table = json.loads(file_metadata["encodings"])
    table["fc.weight"] = {"encoding": "zstd", "dtype": dtype or "float32", "shape": shape}
    forge(scratch, stored, {**file_metadata, "encodings": json.dumps(table)})
    assert_reads_or_refuses(scratch)


@FUZZ
@given(key=st.sampled_from(["wattless", "encodings", "format", "format_version"]), data=st.data())
def test_tampered_metadata_text(valid_file, scratch, read_stored, forge, key, data):
    stored, file_metadata = read_stored(valid_file)
    text = file_metadata[key]
    start = data.draw(st.integers(0, len(text)))
    end = data.draw(st.integers(start, len(text)))
    insert = data.draw(st.text(max_size=10))
    forge(scratch, stored, {**file_metadata, key: text[:start] + insert + text[end:]})
    assert_reads_or_refuses(scratch)


@FUZZ
@given(entry=JSON_VALUES,
       name=st.sampled_from(["fc.weight", "fc.bias", "fc.mask", "head.active", "codes", "packed.fc.codes"]))
def test_arbitrary_encoding_entries(valid_file, scratch, read_stored, forge, entry, name):
    stored, file_metadata = read_stored(valid_file)
    table = json.loads(file_metadata["encodings"])
    table[name] = entry
    forge(scratch, stored, {**file_metadata, "encodings": json.dumps(table)})
    assert_reads_or_refuses(scratch)


@FUZZ
@given(metadata=JSON_VALUES)
def test_arbitrary_user_metadata_json(valid_file, scratch, read_stored, forge, metadata):
    stored, file_metadata = read_stored(valid_file)
    forge(scratch, stored, {**file_metadata, "wattless": json.dumps(metadata)})
    assert_reads_or_refuses(scratch)
