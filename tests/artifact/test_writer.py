"""Writing .wlz files: atomic replacement, and clear refusals of input that cannot be stored."""

import os

import pytest
import torch

from wattless.artifact import write_artifact
from wattless.artifact import writer as writer_module
from wattless.errors import ArtifactError


@pytest.mark.parametrize(
    ("target", "failure", "expected"),
    [
        ("os.fsync", OSError(28, "No space left on device"), ArtifactError),
        ("tensor_bytes", RuntimeError("interrupted mid-way"), RuntimeError),
        ("os.replace", OSError(13, "Permission denied"), ArtifactError),
    ],
)
def test_a_failed_write_leaves_the_previous_file_alone(tmp_path, monkeypatch, target, failure, expected):
    path = tmp_path / "m.wlz"
    write_artifact(path, {"old": torch.ones(3)}, {"version": "old"})
    before = path.read_bytes()

    def fail(*args, **kwargs):
        raise failure

    monkeypatch.setattr(f"{writer_module.__name__}.{target}", fail)
    with pytest.raises(expected):
        write_artifact(path, {"new": torch.zeros(1000)}, {"version": "new"})
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.wlz"]


def test_a_failed_first_write_leaves_no_file(tmp_path, monkeypatch):
    monkeypatch.setattr(f"{writer_module.__name__}.os.fsync", lambda fd: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        write_artifact(tmp_path / "m.wlz", {"x": torch.ones(3)}, {})
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    ("tensors", "metadata", "encodings", "message"),
    [
        ({"x": torch.ones(2)}, {"when": object()}, None, "metadata cannot be stored as JSON"),
        ({"x": torch.ones(2)}, {"loss": float("nan")}, None, "metadata cannot be stored as JSON"),
        ({"x": torch.ones(2)}, ["not", "a", "dict"], None, "metadata must be a dict"),
        ({"x": torch.ones(2, dtype=torch.float64)}, {}, None, "convert it to one of: float32"),
        ({"x": [1.0, 2.0]}, {}, None, "not a torch.Tensor"),
        ({"__metadata__": torch.ones(2)}, {}, None, "cannot be stored"),
        ({"x": torch.ones(2)}, {}, {"x": "lzma"}, "unknown encoding 'lzma'"),
        ({"x": torch.ones(2)}, {}, {"y": "raw"}, "not being written"),
    ],
)
def test_bad_input_is_refused_before_writing(tmp_path, tensors, metadata, encodings, message):
    with pytest.raises(ArtifactError, match=message):
        write_artifact(tmp_path / "m.wlz", tensors, metadata, encodings=encodings)
    assert os.listdir(tmp_path) == []


def test_missing_folder_is_an_artifact_error(tmp_path):
    with pytest.raises(ArtifactError, match="cannot write .*no/such/folder"):
        write_artifact(tmp_path / "no" / "such" / "folder" / "m.wlz", {"x": torch.ones(2)}, {})
