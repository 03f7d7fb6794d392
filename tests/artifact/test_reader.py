"""Reading .wlz files: every broken, forged or foreign file is refused with one clear ArtifactError."""

import json

import pytest
import torch
import zstandard

from wattless.artifact import compression as compression_module
from wattless.artifact import read_artifact, read_metadata, write_artifact
from wattless.errors import ArtifactError


def test_read_metadata_reads_the_header_only(tmp_path, sample_tensors, read_stored, forge):
    write_artifact(tmp_path / "m.wlz", sample_tensors, {"model": "tiny"})
    stored, file_metadata = read_stored(tmp_path / "m.wlz")
    stored["fc.weight"] = torch.zeros_like(stored["fc.weight"])  # its sparse streams, now garbage
    forge(tmp_path / "m.wlz", stored, file_metadata)
    assert read_metadata(tmp_path / "m.wlz") == {"model": "tiny"}
    with pytest.raises(ArtifactError, match="m.wlz is not a valid wattless model file"):
        read_artifact(tmp_path / "m.wlz")


def test_missing_file_names_the_path(tmp_path):
    for read in (read_artifact, read_metadata):
        with pytest.raises(ArtifactError, match=r"nothere\.wlz does not exist"):
            read(tmp_path / "nothere.wlz")


def test_a_folder_is_refused(tmp_path):
    with pytest.raises(ArtifactError, match="is not a regular file"):
        read_artifact(tmp_path)


def test_a_newer_format_version_asks_for_an_upgrade(valid_file, tmp_path, read_stored, forge):
    stored, file_metadata = read_stored(valid_file)
    forge(tmp_path / "new.wlz", stored, {**file_metadata, "format_version": "2"})
    for read in (read_artifact, read_metadata):
        with pytest.raises(ArtifactError, match=r"new\.wlz uses .wlz format version 2.*upgrade wattless"):
            read(tmp_path / "new.wlz")


def test_a_plain_safetensors_file_is_not_a_model(tmp_path, forge):
    forge(tmp_path / "plain.safetensors", {"x": torch.ones(2)}, {"format": "pt"})
    with pytest.raises(ArtifactError, match="without wattless metadata.*re-create it with `wattless train`"):
        read_artifact(tmp_path / "plain.safetensors")


def test_a_file_that_is_not_safetensors_has_a_bad_header(tmp_path):
    (tmp_path / "model.wlz").write_bytes(b"PK\x03\x04 this is a zip file, not a model")
    with pytest.raises(ArtifactError, match=r"model\.wlz is not a valid wattless model file \(bad header"):
        read_artifact(tmp_path / "model.wlz")


def test_max_tensor_bytes_is_enforced_for_raw_and_zstd(tmp_path):
    tensors = {"dense": torch.randn(100), "zeros": torch.zeros(1000)}
    write_artifact(tmp_path / "m.wlz", tensors, {}, encodings={"dense": "raw", "zeros": "zstd"})
    read_artifact(tmp_path / "m.wlz", max_tensor_bytes=4000)
    with pytest.raises(ArtifactError, match="3999-byte limit"):
        read_artifact(tmp_path / "m.wlz", max_tensor_bytes=3999)
    write_artifact(tmp_path / "m.wlz", {"dense": torch.randn(100)}, {}, encodings={"dense": "raw"})
    with pytest.raises(ArtifactError, match="399-byte limit"):
        read_artifact(tmp_path / "m.wlz", max_tensor_bytes=399)


@pytest.mark.parametrize(
    ("entry", "frame", "message"),
    [
        ({"dtype": "float32", "shape": [2**40, 2**20]}, zstandard.compress(bytes(40)), "limit"),
        ({"dtype": "float32", "shape": [10]}, zstandard.compress(bytes(2**24)), "does not hold the 40 bytes"),
        ({"dtype": "float64", "shape": [10]}, zstandard.compress(bytes(80)), "unsupported dtype"),
        ({"dtype": "float32", "shape": [-1]}, zstandard.compress(bytes(4)), "non-negative"),
        ({"dtype": "float32", "shape": [10], "extra": 1}, zstandard.compress(bytes(40)), "fields"),
    ],
)
def test_a_forged_zstd_entry_is_refused_before_decompression(
    tmp_path, forge, monkeypatch, entry, frame, message
):
    def no_decompression():
        raise AssertionError("decompression must not start")

    monkeypatch.setattr(compression_module.zstandard, "ZstdDecompressor", no_decompression)
    file_metadata = {
        "format": "wattless.wlz",
        "format_version": "1",
        "wattless": "{}",
        "encodings": json.dumps({"w": {"encoding": "zstd", **entry}}),
    }
    forge(tmp_path / "m.wlz", {"w": torch.frombuffer(bytearray(frame), dtype=torch.uint8)}, file_metadata)
    with pytest.raises(ArtifactError, match=message) as caught:
        read_artifact(tmp_path / "m.wlz")
    assert not isinstance(caught.value.__cause__, AssertionError)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"wattless": '{"a": 1, "a": 2}'}, "duplicate key"),
        ({"wattless": '{"lr": NaN}'}, "NaN"),
        ({"wattless": '{"lr": 1e999}'}, "out of range"),
        ({"wattless": "[1, 2]"}, "not an object"),
        ({"wattless": "{"}, "not valid JSON"),
        ({"encodings": '{"fc.bias": {"encoding": "raw"}}'}, "differ"),
        ({"encodings": '{"fc.bias": "raw"}'}, "unknown encoding"),
        ({"format_version": "one"}, "bad format version"),
        ({"extra": "key"}, "metadata keys"),
    ],
)
def test_tampered_metadata_is_refused(valid_file, tmp_path, read_stored, forge, change, message):
    stored, file_metadata = read_stored(valid_file)
    forge(tmp_path / "m.wlz", stored, {**file_metadata, **change})
    with pytest.raises(ArtifactError, match=message):
        read_artifact(tmp_path / "m.wlz")


def test_a_bool_tensor_with_other_bytes_is_refused(valid_file, tmp_path, read_stored, forge):
    stored, file_metadata = read_stored(valid_file)
    assert stored["head.active"].dtype == torch.bool  # stored raw
    stored["head.active"] = stored["head.active"].clone()
    stored["head.active"].view(torch.uint8)[0] = 2
    forge(tmp_path / "m.wlz", stored, file_metadata)
    with pytest.raises(ArtifactError, match="bytes other than 0 and 1"):
        read_artifact(tmp_path / "m.wlz")
