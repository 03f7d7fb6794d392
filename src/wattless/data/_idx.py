"""Reader for gzip-compressed IDX files, the format of MNIST and Fashion-MNIST.

Layout (http://yann.lecun.com/exdb/mnist/): a 4-byte magic number ``00 00 <type> <ndim>``, then
``ndim`` big-endian uint32 sizes, then the values in C order. Only unsigned bytes (type 0x08) occur
in these data sets, so only they are read.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from ..errors import DataError

UNSIGNED_BYTE = 0x08
MAX_IDX_BYTES = 1 << 30
"""Largest payload accepted (bytes); a header claiming more is corrupt, not a bigger data set."""


def read_idx(path: Path, *, ndim: int) -> np.ndarray:
    """The uint8 array stored in a ``.gz`` IDX file, checked to have ``ndim`` dimensions.

    Raises DataError naming the file for a bad magic number, absurd sizes, truncated or extra data,
    or a damaged gzip stream.
    """
    try:
        with gzip.open(path, "rb") as stream:
            header = stream.read(4)
            _check_magic(path, header, ndim)
            size_bytes = stream.read(4 * ndim)
            if len(size_bytes) < 4 * ndim:
                raise DataError(f"{path}: IDX header is truncated; the file is damaged, fetch it again")
            shape = tuple(int(s) for s in np.frombuffer(size_bytes, dtype=">u4"))
            n_values = int(np.prod(shape, dtype=np.int64))
            if n_values == 0 or n_values > MAX_IDX_BYTES:
                raise DataError(f"{path}: IDX header claims sizes {shape}; the file is corrupt")
            payload = stream.read(n_values + 1)
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(f"{path}: not a readable gzip file ({error}); fetch it again") from error
    if len(payload) != n_values:
        problem = "is truncated" if len(payload) < n_values else "has extra bytes after the data"
        raise DataError(f"{path}: IDX data {problem} (header sizes {shape}); fetch the file again")
    return np.frombuffer(payload, dtype=np.uint8).reshape(shape)


def _check_magic(path: Path, header: bytes, ndim: int) -> None:
    expected = bytes([0, 0, UNSIGNED_BYTE, ndim])
    if header != expected:
        raise DataError(
            f"{path}: bad IDX magic number 0x{header.hex()}, expected 0x{expected.hex()} "
            f"(unsigned bytes, {ndim} dimensions); is it the right file?"
        )
