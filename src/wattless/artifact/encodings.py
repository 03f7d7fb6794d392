"""How one logical tensor is stored in a `.wlz` file: a registry of encodings by name.

Each encoding is a pair of small functions. ``encode(tensor)`` returns the tensor to store and
its entry in the file's encodings table; ``decode(stored, entry, max_bytes)`` checks the entry
strictly (raising FormatError) and rebuilds the tensor, allocating at most `max_bytes` bytes.
A new encoding is one more pair and one more line in ``ENCODINGS``; the container does not change.
"""

from collections.abc import Callable
from typing import Any, NamedTuple

import torch

from wattless.artifact.bitpack import decode_bitpack, encode_bitpack
from wattless.artifact.compression import compress, decompress_exact
from wattless.artifact.entropy import decode_entropy, encode_entropy
from wattless.artifact.format import (
    DTYPE_BY_NAME,
    NAME_BY_DTYPE,
    FormatError,
    checked_nbytes,
    tensor_bytes,
    uint8_tensor,
)
from wattless.artifact.sparse import decode_sparse, encode_sparse, mostly_zero

Entry = dict[str, Any]


class Encoding(NamedTuple):
    """The two functions of one encoding."""

    encode: Callable[[torch.Tensor], tuple[torch.Tensor, Entry]]
    decode: Callable[[torch.Tensor, Entry, int], torch.Tensor]


def _check_fields(entry: Entry, expected: set[str]) -> None:
    if set(entry) != expected:
        raise FormatError(
            f"{entry['encoding']} entry has fields {sorted(entry)}, expected {sorted(expected)}"
        )


def encode_raw(tensor: torch.Tensor) -> tuple[torch.Tensor, Entry]:
    """Store the tensor as it is."""
    return tensor, {"encoding": "raw"}


def decode_raw(stored: torch.Tensor, entry: Entry, max_bytes: int) -> torch.Tensor:
    """The stored tensor is the tensor (the reader has checked its dtype and size already)."""
    _check_fields(entry, {"encoding"})
    return stored


def encode_zstd(tensor: torch.Tensor) -> tuple[torch.Tensor, Entry]:
    """Store one zstd frame (with content size and checksum) of the tensor's bytes as a uint8 tensor."""
    entry = {"encoding": "zstd", "dtype": NAME_BY_DTYPE[tensor.dtype], "shape": list(tensor.shape)}
    return uint8_tensor(compress(tensor_bytes(tensor))), entry


def decode_zstd(stored: torch.Tensor, entry: Entry, max_bytes: int) -> torch.Tensor:
    """Decompress after checking the expected size against `max_bytes` and the frame's own claim."""
    _check_fields(entry, {"encoding", "dtype", "shape"})
    dtype = DTYPE_BY_NAME.get(entry["dtype"]) if isinstance(entry["dtype"], str) else None
    if dtype is None:
        raise FormatError(f"zstd entry has unsupported dtype {str(entry['dtype'])[:40]}")
    if stored.dtype != torch.uint8 or stored.dim() != 1:
        raise FormatError(
            f"zstd data must be a 1-D uint8 tensor, got {stored.dtype} of shape {list(stored.shape)}"
        )
    expected = checked_nbytes(dtype, entry["shape"], max_bytes)
    data = decompress_exact(stored.numpy().tobytes(), expected, "zstd")
    return uint8_tensor(data).view(dtype).reshape(entry["shape"])


def _encode_bitpack_unset(tensor: torch.Tensor) -> tuple[torch.Tensor, Entry]:
    raise ValueError("bitpack needs a bit width: name it as ('bitpack', {'bits': b})")


ENCODINGS: dict[str, Encoding] = {
    "raw": Encoding(encode_raw, decode_raw),
    "zstd": Encoding(encode_zstd, decode_zstd),
    "bitpack": Encoding(_encode_bitpack_unset, decode_bitpack),
    "sparse": Encoding(encode_sparse, decode_sparse),
    "entropy": Encoding(encode_entropy, decode_entropy),
}
PARAMETRIC_ENCODERS = {"bitpack": encode_bitpack}
"""Encoders that take options (e.g. the bit width), named as ``(name, {option: value})``."""


def _always(tensor: torch.Tensor) -> bool:
    return True


AUTOMATIC_ENCODINGS: dict[str, Callable[[torch.Tensor], bool]] = {
    "raw": _always, "zstd": _always, "sparse": mostly_zero,
}
"""Tried by the writer, each where its test passes, for a tensor the caller names no encoding for; the fewest
stored bytes win, the first on a tie."""

CODE_ENCODINGS: dict[str, Callable[[torch.Tensor], bool]] = {"sparse": mostly_zero, "entropy": _always}
"""Tried by the writer, besides ``bitpack``, for integer codes named as ``("bitpack", {"bits": b})``, each where
its test passes and it accepts the tensor; the fewest stored bytes win, ``bitpack`` on a tie."""
