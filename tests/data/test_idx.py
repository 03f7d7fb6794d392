"""The IDX reader: round trip, and one clear DataError naming the file for each kind of damage."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from wattless.data._idx import read_idx
from wattless.errors import DataError


def test_round_trip_keeps_shape_and_values(tmp_path, write_idx):
    images = np.random.default_rng(0).integers(0, 256, size=(5, 28, 27), dtype=np.uint8)
    labels = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "i.gz", images), ndim=3), images)
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "l.gz", labels), ndim=1), labels)


@pytest.mark.parametrize(
    "damage, message",
    [
        ({"magic": b"\x00\x00\x08\x01"}, "bad IDX magic number"),  # a label file where images are expected
        ({"magic": b"\x00\x00\x0d\x03"}, "bad IDX magic number"),  # floats, not unsigned bytes
        ({"magic": b"PK\x03\x04"}, "bad IDX magic number"),
        ({"cut": 10}, "truncated"),
        ({"extra": b"\x00" * 3}, "extra bytes"),
    ],
)
def test_damaged_file_is_a_data_error_naming_it(tmp_path, write_idx, damage, message):
    path = write_idx(tmp_path / "train-images-idx3-ubyte.gz", np.zeros((4, 28, 28), np.uint8), **damage)
    with pytest.raises(DataError, match=message) as error:
        read_idx(path, ndim=3)
    assert str(path) in str(error.value)


def test_truncated_header_is_a_data_error(tmp_path):
    path = tmp_path / "short.gz"
    with gzip.open(path, "wb") as stream:
        stream.write(b"\x00\x00\x08\x03\x00\x00")
    with pytest.raises(DataError, match="header is truncated"):
        read_idx(path, ndim=3)


def test_absurd_sizes_are_refused_before_allocating(tmp_path):
    path = tmp_path / "huge.gz"
    with gzip.open(path, "wb") as stream:
        stream.write(b"\x00\x00\x08\x03" + (0xFFFFFFFF).to_bytes(4, "big") * 3)
    with pytest.raises(DataError, match="corrupt"):
        read_idx(path, ndim=3)


def test_zero_sized_array_is_refused(tmp_path, write_idx):
    with pytest.raises(DataError, match="corrupt"):
        read_idx(write_idx(tmp_path / "empty.gz", np.zeros((0, 28, 28), np.uint8)), ndim=3)


def test_not_gzip_is_a_data_error(tmp_path):
    path = tmp_path / "plain.gz"
    path.write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x01\x07")
    with pytest.raises(DataError, match="not a readable gzip file") as error:
        read_idx(path, ndim=1)
    assert str(path) in str(error.value)


def test_cut_gzip_stream_is_a_data_error(tmp_path, write_idx):
    path = write_idx(tmp_path / "cut.gz", np.arange(1000, dtype=np.uint8) % 7)
    path.write_bytes(path.read_bytes()[:-12])
    with pytest.raises(DataError, match=str(path)):
        read_idx(path, ndim=1)
