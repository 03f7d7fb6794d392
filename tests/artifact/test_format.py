"""The .wlz format end to end: round trips of every dtype, sizes, the safetensors layout, determinism."""

import json
import math
import os
import struct

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors import safe_open
from safetensors.torch import save

from wattless.artifact import FORMAT_VERSION, read_artifact, read_encodings, read_metadata, write_artifact

DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.int8, torch.uint8,
          torch.int16, torch.int32, torch.int64, torch.bool]  # fmt: skip


def example_of(dtype: torch.dtype, shape: tuple[int, ...]) -> torch.Tensor:
    values = torch.arange(math.prod(shape), dtype=torch.float64).reshape(shape) % 7 - 3
    return (values > 0) if dtype == torch.bool else values.to(dtype)


def assert_same_tensors(got: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    assert list(got) == sorted(expected)
    for name, tensor in expected.items():
        assert got[name].dtype == tensor.dtype and got[name].shape == tensor.shape, name
        assert torch.equal(got[name], tensor), name


@pytest.mark.parametrize("encoding", [None, "raw", "zstd", "sparse"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_every_dtype_round_trips(tmp_path, dtype, encoding):
    tensors = {
        "matrix": example_of(dtype, (3, 5)),
        "scalar": example_of(dtype, ()),
        "empty": example_of(dtype, (0, 4)),
    }
    chosen = None if encoding is None else dict.fromkeys(tensors, encoding)
    write_artifact(tmp_path / "m.wlz", tensors, {"dtype": str(dtype)}, encodings=chosen)
    got, metadata = read_artifact(tmp_path / "m.wlz")
    assert_same_tensors(got, tensors)
    assert metadata == {"dtype": str(dtype)}
    if encoding is not None:
        assert {entry["encoding"] for entry in read_encodings(tmp_path / "m.wlz").values()} == {encoding}


@settings(max_examples=40, deadline=None)
@given(
    dtype=st.sampled_from(DTYPES),
    shape=st.lists(st.integers(0, 4), max_size=4),
    seed=st.integers(0, 2**16),
    encoding=st.sampled_from([None, "raw", "zstd", "sparse"]),
)
def test_random_tensors_round_trip(tmp_path_factory, dtype, shape, seed, encoding):
    generator = torch.Generator().manual_seed(seed)
    bits = torch.randint(0, 256, (math.prod(shape) * dtype.itemsize,), dtype=torch.uint8, generator=generator)
    tensor = bits.view(dtype).reshape(shape) if dtype != torch.bool else (bits % 2).bool().reshape(shape)
    path = tmp_path_factory.mktemp("round_trip") / "m.wlz"
    write_artifact(path, {"t": tensor}, {"seed": seed}, encodings=encoding and {"t": encoding})
    got, metadata = read_artifact(path)
    assert metadata == {"seed": seed}
    if read_encodings(path)["t"]["encoding"] == "sparse":  # the one change an encoding makes: -0.0 -> +0.0
        tensor = tensor.masked_fill(tensor == 0, 0)
    # Compare bytes, since random bits make NaNs, which are never equal to themselves.
    assert got["t"].dtype == dtype and got["t"].shape == tensor.shape
    assert torch.equal(got["t"].reshape(-1).view(torch.uint8), tensor.reshape(-1).view(torch.uint8))


def test_non_contiguous_tensors_are_stored_by_value(tmp_path):
    tensors = {"transposed": torch.arange(12.0).reshape(3, 4).t(), "sliced": torch.arange(10)[::3]}
    write_artifact(tmp_path / "m.wlz", tensors, {})
    assert_same_tensors(read_artifact(tmp_path / "m.wlz")[0], tensors)


def test_the_writer_picks_the_smallest_encoding(tmp_path):
    generator = torch.Generator().manual_seed(0)
    tensors = {"dense": torch.randn(64, generator=generator), "constant": torch.full((64,), 0.5)}
    size = write_artifact(tmp_path / "m.wlz", tensors, {})
    assert size == os.path.getsize(tmp_path / "m.wlz")
    assert read_encodings(tmp_path / "m.wlz") == {
        "dense": {"encoding": "raw"},  # random floats do not compress, so raw is smaller
        "constant": {"encoding": "zstd", "dtype": "float32", "shape": [64]},
    }
    assert_same_tensors(read_artifact(tmp_path / "m.wlz")[0], tensors)


def test_a_wlz_file_is_a_plain_safetensors_file(tmp_path, sample_tensors, read_stored):
    write_artifact(tmp_path / "m.wlz", sample_tensors, {"model": "tiny"})
    with safe_open(tmp_path / "m.wlz", framework="pt") as file:
        file_metadata, names = file.metadata(), list(file.keys())
        bundle = file.get_tensor("wattless")
    assert file_metadata == {"format": "wattless.wlz", "format_version": str(FORMAT_VERSION)}
    assert names == ["wattless"] and bundle.dtype == torch.uint8 and bundle.dim() == 1
    stored, logical_metadata = read_stored(tmp_path / "m.wlz")
    assert json.loads(logical_metadata["wattless"]) == {"model": "tiny"}
    assert set(stored) == set(sample_tensors)
    assert torch.equal(stored["fc.bias"], sample_tensors["fc.bias"])
    assert stored["fc.weight"].dtype == torch.uint8  # its sparse streams
    # Byte for byte what safetensors writes, but for the order of the metadata keys.
    ours = (tmp_path / "m.wlz").read_bytes()
    reference = save({"wattless": bundle}, file_metadata)
    header_bytes = struct.unpack("<Q", ours[:8])[0]
    assert len(ours) == len(reference) and ours[:8] == reference[:8]
    assert json.loads(ours[8 : 8 + header_bytes]) == json.loads(reference[8 : 8 + header_bytes])
    assert ours[8 + header_bytes :] == reference[8 + header_bytes :]


def test_version_1_files_are_still_read(tmp_path, valid_file, read_stored, forge):
    """A version-1 file: each stored tensor a safetensors tensor, the metadata and encodings as JSON text."""
    stored, file_metadata = read_stored(valid_file)
    forge(tmp_path / "v1.wlz", stored, {**file_metadata, "format_version": "1"})
    with safe_open(tmp_path / "v1.wlz", framework="pt") as file:
        assert set(file.keys()) == set(stored) and file.metadata()["format_version"] == "1"
    tensors, metadata = read_artifact(tmp_path / "v1.wlz")
    expected, expected_metadata = read_artifact(valid_file)
    assert_same_tensors(tensors, expected)
    assert metadata == expected_metadata == read_metadata(tmp_path / "v1.wlz")
    assert read_encodings(tmp_path / "v1.wlz") == read_encodings(valid_file)


def test_the_header_is_compressed(tmp_path):
    """The metadata of a real model file, about 2 KB of JSON, takes a few hundred bytes (see header.py)."""
    metadata = {"dataset": {"classes": [f"class {k}" for k in range(10)], "input_shape": [1, 28, 28],
                            "name": "fashion-mnist", "num_outputs": 10,
                            "preprocessing": {"kind": "standardize", "mean": 0.2857984328916752,
                                              "pixel_scale": 1 / 255, "std": 0.3528536557590371}},
                "model": {"input_shape": [1, 28, 28], "kwargs": {}, "name": "lenet300", "num_outputs": 10},
                "recipe": [{"config": {"clusters": 16, "finetune_epochs": 1, "init": "linear", "lr": 0.0001,
                                       "version": 1}, "technique": "share.kmeans"}]}
    tensors = {f"{layer}.bias": torch.zeros(1) for layer in range(1, 6)}
    size = write_artifact(tmp_path / "m.wlz", tensors, metadata)
    header_json = len(json.dumps(metadata)) + 50 * len(tensors)
    assert size < 160 + 5 * 4 + header_json / 3


def test_same_input_gives_the_same_bytes(tmp_path, sample_tensors):
    metadata = {"b": [1, 2.5, None], "a": {"z": True, "y": "é"}}
    write_artifact(tmp_path / "first.wlz", sample_tensors, metadata)
    reordered = dict(reversed(list(sample_tensors.items())))
    write_artifact(tmp_path / "second.wlz", reordered, dict(reversed(list(metadata.items()))))
    assert (tmp_path / "first.wlz").read_bytes() == (tmp_path / "second.wlz").read_bytes()
