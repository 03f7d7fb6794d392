"""Shared pieces for the .wlz tests: a small model-like set of tensors, and a way to forge files."""

import json
import math
import struct
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from wattless.artifact import FORMAT_VERSION, read_artifact, write_artifact
from wattless.artifact.format import BUNDLE_NAME, DTYPE_BY_NAME, NAME_BY_DTYPE, canonical_json, uint8_tensor
from wattless.artifact.header import compress_header, decompress_header
from wattless.errors import ArtifactError

Stored = tuple[dict[str, torch.Tensor], dict[str, str]]
SAMPLE_ENCODINGS = {"packed.fc.codes": ("bitpack", {"bits": 3})}


def _sample_tensors() -> dict[str, torch.Tensor]:
    """A tiny model: each encoding the writer picks by itself, and bool masks and int codes.

    Sparse with gap indices for a 90%-zero weight and its mask, sparse with a bitmap for a half-zero
    weight, zstd for a constant norm weight, raw for dense floats; written with ``SAMPLE_ENCODINGS``,
    entropy-coded integer codes of pruned weights.
    """
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(16, 24, generator=generator)
    weight[torch.rand(16, 24, generator=generator) < 0.9] = 0
    half_zero = torch.randn(16, 16, generator=generator)
    half_zero[torch.rand(16, 16, generator=generator) < 0.5] = 0
    codes = torch.randint(1, 8, (24, 40), dtype=torch.int32, generator=generator)
    codes[torch.rand(24, 40, generator=generator) < 0.85] = 0
    return {
        "packed.fc.codes": codes,
        "fc.weight": weight,
        "fc.bias": torch.randn(16, generator=generator),
        "fc.mask": weight != 0,
        "out.weight": half_zero,
        "norm.weight": torch.ones(16),
        "head.active": torch.tensor([True, False, True, True]),
        "codes": torch.randint(-8, 8, (40,), dtype=torch.int8, generator=generator),
        "step": torch.tensor(7),
    }


def _read_stored(path: Path) -> Stored:
    """The stored tensors of a .wlz file of either version, and its metadata as a version-1 file holds it:
    ``format`` and ``format_version``, and the user metadata and the encodings table as JSON text."""
    with safe_open(path, framework="pt") as file:
        file_metadata = dict(file.metadata())
        if file_metadata.get("format_version") == "1":
            return {name: file.get_tensor(name) for name in file.keys()}, file_metadata
        bundle = file.get_tensor(BUNDLE_NAME).numpy().tobytes()
    (frame_bytes,) = struct.unpack("<I", bundle[:4])
    header = json.loads(decompress_header(bundle[4 : 4 + frame_bytes], int(file_metadata["format_version"])))
    stored, offset = {}, 4 + frame_bytes
    for name, (dtype_name, shape) in sorted(header["stored"].items()):
        dtype = DTYPE_BY_NAME[dtype_name]
        count = math.prod(shape) * dtype.itemsize
        stored[name] = uint8_tensor(bundle[offset : offset + count]).view(dtype).reshape(shape)
        offset += count
    file_metadata.update(encodings=canonical_json(header["encodings"]), wattless=canonical_json(header["wattless"]))
    return stored, file_metadata


def _forge(path: Path, stored: dict[str, torch.Tensor], file_metadata: dict[str, str]) -> Path:
    """Write a file with exactly these stored tensors and metadata, bypassing our writer.

    A version-2 or -3 file (its frame made with that version's dictionary) when `file_metadata` has the
    ``encodings`` and ``wattless`` texts and does not say version 1: those texts go into its compressed header
    as they are (so they may be broken JSON), the other keys into the safetensors metadata. Otherwise a plain
    safetensors file of `stored` and `file_metadata`.
    """
    if file_metadata.get("format_version") == "1" or not {"encodings", "wattless"} <= set(file_metadata):
        save_file(stored, path, metadata=file_metadata)
        return path
    description = {name: [NAME_BY_DTYPE[value.dtype], list(value.shape)] for name, value in stored.items()}
    text = (f'{{"encodings":{file_metadata["encodings"]},"stored":{canonical_json(description)},'
            f'"wattless":{file_metadata["wattless"]}}}')
    version = file_metadata.get("format_version")
    frame = compress_header(text, int(version) if version in ("2", "3") else FORMAT_VERSION)
    data = b"".join([struct.pack("<I", len(frame)), frame,
                     *(stored[name].contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
                       for name in sorted(stored))])
    others = {key: value for key, value in file_metadata.items() if key not in ("encodings", "wattless")}
    save_file({BUNDLE_NAME: uint8_tensor(data)}, path, metadata=others)
    return path


@pytest.fixture
def sample_tensors() -> dict[str, torch.Tensor]:
    return _sample_tensors()


@pytest.fixture(scope="session")
def valid_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A .wlz file of the sample tensors, holding raw, zstd, sparse and entropy tensors; do not modify it."""
    path = tmp_path_factory.mktemp("valid") / "model.wlz"
    write_artifact(path, _sample_tensors(), {"model": "tiny", "classes": ["a", "b"], "lr": 0.1},
                   encodings=SAMPLE_ENCODINGS)
    return path


@pytest.fixture(scope="session")
def read_stored() -> Callable[[Path], Stored]:
    return _read_stored


@pytest.fixture(scope="session")
def forge() -> Callable[[Path, dict[str, torch.Tensor], dict[str, str]], Path]:
    return _forge


def _read_forged(path: Path, name: str, max_tensor_bytes: int = 2**20) -> int:
    """Read a forged file: tensor ``name`` within ``max_tensor_bytes``, or one one-line ArtifactError; returns
    the peak memory allocated on the way (bytes)."""
    tracemalloc.start()
    try:
        tensors, _ = read_artifact(path, max_tensor_bytes=max_tensor_bytes)
        assert tensors[name].numel() * tensors[name].element_size() <= max_tensor_bytes
    except ArtifactError as error:
        assert "\n" not in str(error)
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


@pytest.fixture(scope="session")
def read_forged() -> Callable[[Path, str], int]:
    return _read_forged
