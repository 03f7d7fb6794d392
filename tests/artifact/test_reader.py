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
    forge(tmp_path / "new.wlz", stored, {**file_metadata, "format_version": "4"})
    for read in (read_artifact, read_metadata):
        with pytest.raises(ArtifactError, match=r"new\.wlz uses .wlz format version 4.*upgrade wattless"):
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


def _bundle_file(path, bundle: bytes, extra: dict | None = None, metadata: dict | None = None):
    """A version-2 file holding exactly `bundle` (and any `extra` tensors), bypassing the writer."""
    from safetensors.torch import save_file

    from wattless.artifact.format import uint8_tensor

    tensors = {"wattless": uint8_tensor(bundle), **(extra or {})}
    save_file(tensors, path, metadata=metadata or {"format": "wattless.wlz", "format_version": "2"})
    return path


def _header(text: str) -> bytes:
    from wattless.artifact.header import compress_header

    frame = compress_header(text, version=2)  # the bundles of _bundle_file say version 2
    return len(frame).to_bytes(4, "little") + frame


GOOD_HEADER = '{"encodings":{"x":{"encoding":"raw"}},"stored":{"x":["float32",[2]]},"wattless":{}}'


@pytest.mark.parametrize(
    ("bundle", "message"),
    [
        (b"\x01\x00", "too few"),
        ((1000).to_bytes(4, "little") + bytes(20), "claims 1000 bytes"),
        ((8).to_bytes(4, "little") + b"notzstd!", "not a zstd frame"),
        ((9).to_bytes(4, "little") + zstandard.ZstdCompressor(write_content_size=True).compress(b"{}")[:9],
         "zstd"),
        (_header(GOOD_HEADER) + bytes(8), None),
        (_header(GOOD_HEADER) + bytes(9), "take"),
        (_header(GOOD_HEADER) + bytes(7), "runs past the end"),
        (_header(GOOD_HEADER.replace("float32", "float64")) + bytes(8), "bad description"),
        (_header(GOOD_HEADER.replace('["float32",[2]]', '"float32"')) + bytes(8), "bad description"),
        (_header(GOOD_HEADER.replace('[2]', '[-2]')) + bytes(8), "non-negative"),
        (_header(GOOD_HEADER.replace('"stored":{"x"', '"stored":{"y"')) + bytes(8), "differ"),
        (_header(GOOD_HEADER.replace('"wattless":{}', '"wattless":{},"more":1')) + bytes(8), "keys"),
        (_header(GOOD_HEADER.replace('"wattless":{}', '"wattless":[]')) + bytes(8), "not an object"),
        (_header("[]") + bytes(8), "not an object"),
        (_header('{"a":') + bytes(8), "not valid JSON"),
    ],
)
def test_a_forged_bundle_is_refused(tmp_path, bundle, message):
    path = _bundle_file(tmp_path / "m.wlz", bundle)
    if message is None:  # the control: a well-formed bundle reads
        assert torch.equal(read_artifact(path)[0]["x"], torch.zeros(2))
        return
    for read in (read_artifact, read_metadata):  # the header only, but all of it, is checked by both
        with pytest.raises(ArtifactError, match=message):
            read(path)


def test_a_version_2_file_holds_one_uint8_tensor(tmp_path):
    bundle = _header(GOOD_HEADER) + bytes(8)
    _bundle_file(tmp_path / "two.wlz", bundle, extra={"x": torch.zeros(2)})
    with pytest.raises(ArtifactError, match="holds one tensor"):
        read_artifact(tmp_path / "two.wlz")
    from safetensors.torch import save_file

    save_file({"wattless": torch.zeros(2)}, tmp_path / "float.wlz",
              metadata={"format": "wattless.wlz", "format_version": "2"})
    with pytest.raises(ArtifactError, match="1-D uint8"):
        read_artifact(tmp_path / "float.wlz")
    _bundle_file(tmp_path / "keys.wlz", bundle, metadata={"format": "wattless.wlz", "format_version": "2",
                                                          "wattless": "{}"})
    with pytest.raises(ArtifactError, match="metadata keys"):
        read_artifact(tmp_path / "keys.wlz")


def test_a_header_claiming_a_huge_size_is_refused_before_decompression(tmp_path, monkeypatch):
    from wattless.artifact import header as header_module

    frame = zstandard.ZstdCompressor(write_content_size=True).compress(b" " * 2**25)
    _bundle_file(tmp_path / "m.wlz", len(frame).to_bytes(4, "little") + frame)

    def no_decompression(*args, **kwargs):
        raise AssertionError("decompression must not start")

    monkeypatch.setattr(header_module.zstandard, "ZstdDecompressor", no_decompression)
    with pytest.raises(ArtifactError, match="over the 16777216 limit") as caught:
        read_metadata(tmp_path / "m.wlz")
    assert not isinstance(caught.value.__cause__, AssertionError)


def test_stored_sizes_add_up_to_the_tensors_on_disk(tmp_path):
    import os

    from wattless.artifact import read_stored_sizes, write_artifact

    path = tmp_path / "m.wlz"
    write_artifact(path, {"a": torch.zeros(100, 10), "b": torch.arange(7, dtype=torch.int16)}, {"k": 1},
                   encodings={"a": "raw", "b": "raw"})
    sizes = read_stored_sizes(path)
    assert sizes == {"a": 4000, "b": 14}
    assert sum(sizes.values()) < os.path.getsize(path)
