"""Format versions: new files are version 3 (a larger header dictionary); version-2 files still read the same."""

import base64
import hashlib
import json
from pathlib import Path

import pytest
from safetensors import safe_open

from wattless.artifact import FORMAT_VERSION, read_artifact, read_encodings, read_metadata, write_artifact
from wattless.artifact.breakdown import breakdown
from wattless.artifact.header import compress_header, decompress_header
from wattless.artifact.header_dictionary import _LENET5, _LENET300

VERSION_2_BYTES = base64.b64decode(
    "gAAAAAAAAAB7Il9fbWV0YWRhdGFfXyI6eyJmb3JtYXQiOiJ3YXR0bGVzcy53bHoiLCJmb3JtYXRfdmVyc2lvbiI6IjIifSwid2F0dGxlc3Mi"
    "OnsiZHR5cGUiOiJVOCIsInNoYXBlIjpbNjEwXSwiZGF0YV9vZmZzZXRzIjpbMCw2MTBdfX0gIP4AAAAotS/9ZEADhQcAIocXGIBtAyCAuHcl"
    "5kPiKpkYnAKRkvwCW2MEaFUFCC5CU3qvveogKV+gyUKUX1b4Fkd1YhS6OV+M1DXvlQldpkTWnd0Ndu9e9y64fe/iobd9e9723k584GJDs8Hs"
    "YNwkFTagEaJXtr8BMIKCjBTRA5OQIIDZsLFX6ySRnQo3z7TPMKGIPNb+dhCkparX0KLl6UCRFkRGir8M7DV6m3yjb6cKpDcP3l2BZQNTNA7A"
    "iSUV9aCt+Zx3q6t2lj0lmv11T+mtaGSV7gpboBydxoYfXxwrS4JiPEQI7sPG7ToSq9O6zhTwLOe5Z//2ya5pXvglYnsP3B3dzT6+5Fm/mNby"
    "vVhyBz9ICaC/hjcIwAroY7+DZm0/Aa2euJ8P9/cFeiRbIRNFLA1Gfz5riak/uCoPv7ERB0ANTma/B3kTwPnaJD/Nf9C/pxCwPrtJFj8jNly9"
    "AZctP1iwoz54/5s/RiklPxy4tL+xWAM/R2tFPzvY2jtsczs+NKm3vwd9wD+4fWs/oeMMQKYIhj8La4e/eFI8P+Yuhj+HcGS+I+Z5PwGMabzf"
    "SiNAyAo/P+3Oqz8YCSe+OmSrP6SFBr+B0/0/bCyRuhMbgL6W4pA/Gcqjv42xpD8otS/9JCBdAAAoAACAPwABAMKrBbp5McYcA1x5EWNeEmkX"
    "pEQAAAC/CtcjPAAAgL/e3V2/vLs7v5mZGb/u7u6+qqqqvsrMTL6CiIi9goiIPcrMTD6qqqo+7u7uPpmZGT+8uzs/3t1dPwAAgD97rwYYk5zD"
    "uNPkr8WEEDUvcIaOuZG1eY0="
)
"""A file written by wattless main at 21f9607 (format version 2): entropy, bitpack, sparse, zstd and raw tensors."""
VERSION_2_SHA256 = {  # of each tensor's bytes as main's reader decoded them
    "fc2.bias": "775bdae684cbc8da831b8d5de2bf1a12e5ba9532fc8d16e67dbb99d50641703c",
    "fc2.weight": "6e30f16123e57a239250d6e6d35cd4241332747a58d01b54c17b89d685150115",
    "norm.weight": "4f05df05f8da9356bd66425351f166a5f7305b7c805e6900d9ec0f50790c9886",
    "packed.fc1.bias.codes": "cf526014b12eb6753a01d07ce65dd2d6a4980b3a99441040c4bdbd042dc848d6",
    "packed.fc1.bias.offset": "c34fde18c1b8ec18aa9dd952cdbbcce00cf0505358e6cfcce5a6fe795e1d019b",
    "packed.fc1.bias.scale": "0d66bd808e9247acb560fe33efaa62ad6f11ee6f85cc4f61bd17673263de04ee",
    "packed.fc1.weight.codebook": "cae3a3b1673d883dc842fd39568655880ccb751e85db0a07226643797c3bb372",
    "packed.fc1.weight.codes": "b77a9be84c63f87476174412ab31221e2b6fd1330d4300f6b15a3e22f4ad88f0",
}


@pytest.fixture
def version_2_file(tmp_path) -> Path:
    path = tmp_path / "version2.wlz"
    path.write_bytes(VERSION_2_BYTES)
    return path


def _version(path: Path) -> str:
    with safe_open(path, framework="pt") as file:
        return file.metadata()["format_version"]


def test_a_version_2_file_reads_to_the_tensors_it_held(version_2_file):
    assert _version(version_2_file) == "2"
    tensors, metadata = read_artifact(version_2_file)
    assert {name: hashlib.sha256(value.contiguous().numpy().tobytes()).hexdigest()
            for name, value in tensors.items()} == VERSION_2_SHA256
    assert metadata == read_metadata(version_2_file) and metadata["model"] == {"name": "mlp"}
    assert {entry["encoding"] for entry in read_encodings(version_2_file).values()} == {
        "entropy", "bitpack", "sparse", "zstd", "raw"}
    found = breakdown(version_2_file)
    assert found["format_version"] == 2
    assert found["safetensors_bytes"] + found["header_bytes"] + sum(
        t["bytes"] for t in found["tensors"].values()) == version_2_file.stat().st_size


def test_rewriting_a_version_2_file_gives_version_3_with_the_same_tensors(version_2_file, tmp_path):
    tensors, metadata = read_artifact(version_2_file)
    encodings = {name: entry["encoding"] for name, entry in read_encodings(version_2_file).items()
                 if entry["encoding"] != "bitpack"}
    encodings["packed.fc1.bias.codes"] = ("bitpack", {"bits": 8})
    first, second = tmp_path / "a.wlz", tmp_path / "b.wlz"
    write_artifact(first, tensors, metadata, encodings=encodings)
    write_artifact(second, tensors, metadata, encodings=encodings)
    assert FORMAT_VERSION == 3 and _version(first) == "3"
    assert first.read_bytes() == second.read_bytes()  # deterministic
    again, metadata_again = read_artifact(first)
    assert metadata_again == metadata
    assert {name: value.numpy().tobytes() for name, value in again.items()} == {
        name: value.numpy().tobytes() for name, value in tensors.items()}


def test_version_3_header_of_a_deep_compression_file_is_smaller():
    """The skeletons filled in as a file would fill them: version 3's frame is under half version 2's."""
    for skeleton in (_LENET5, _LENET300):
        text = (skeleton.replace('"nonzeros":', '"nonzeros":1234').replace('["uint8",[]]', '["uint8",[567]]')
                .replace('"mean":0.,', '"mean":0.2857984328916752,').replace('"std":0.}', '"std":0.35285365}'))
        json.loads(text)  # a skeleton is a header with the numbers left out
        version_2, version_3 = compress_header(text, 2), compress_header(text, 3)
        assert decompress_header(version_3, 3) == text == decompress_header(version_2, 2)
        assert len(version_3) < len(version_2) / 2
