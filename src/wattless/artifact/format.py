"""The `.wlz` packed model format, version 3 (versions 1 and 2 are still read).

A `.wlz` file is a valid safetensors file (https://github.com/huggingface/safetensors):
8 bytes header length N (u64 little-endian), N bytes of JSON header padded with spaces to a
multiple of 8, then the tensor bytes.

Version 3 (written) is version 2 with a larger header dictionary (``header.py``); both are laid out so:
the safetensors ``__metadata__`` holds exactly ``"format": "wattless.wlz"`` and
``"format_version": "3"`` (or ``"2"``), and the file holds one tensor, ``"wattless"``, 1-D uint8, whose bytes are:

1. ``H``: 4 bytes, u32 little-endian;
2. ``H`` bytes: one zstd frame (with content size and checksum) of the **header**, made with the fixed
   dictionary of the file's version in ``header.py``; the header is the JSON object ``{"encodings": ..., "stored": ...,
   "wattless": ...}`` (at most 16 MiB);
3. the stored tensors' little-endian C-order bytes, one after the other in the order of their names
   (sorted by code point), with nothing between or after them.

``"stored"`` maps every stored tensor's name to ``[D, [d0, ...]]``, its dtype and shape; together
with the order, that places each tensor as a safetensors header would. ``"wattless"`` is the user
metadata (a JSON object), and ``"encodings"`` maps every logical tensor name to how it is stored,
naming exactly the stored tensors (which carry the same names). Entries:

  - ``{"encoding": "raw"}``: stored as the tensor itself, in its dtype and shape.
  - ``{"encoding": "zstd", "dtype": D, "shape": [d0, ...]}``: stored as a 1-D uint8 tensor
    holding one zstd frame, with content size, of the tensor's little-endian C-order bytes.
  - ``{"encoding": "bitpack", ...}``: integer codes at their bit width (``bitpack.py``).
  - ``{"encoding": "sparse", ...}``: the non-zeros' positions and values (``sparse.py``).
  - ``{"encoding": "entropy", ...}``: integer codes range-coded with a context model (``entropy.py``).

  New encodings are new entry kinds in this table (see ``encodings.py``); the container stays.

Why one tensor and a compressed header: a pruned, entropy-coded LeNet-5 takes about 4 KB of weights,
and version 1 spent 4.8 KB on its header (a safetensors entry of about 80 bytes per stored tensor,
and the metadata as escaped JSON text); version 2 spends about 0.7 KB. The cost: safetensors tools
see one opaque uint8 tensor; ``wattless inspect`` and :func:`read_artifact` show everything.

Version 1 (read only): the ``__metadata__`` holds ``"format"``, ``"format_version": "1"``, and the
user metadata and the encodings table as JSON text under ``"wattless"`` and ``"encodings"``; each
stored tensor is a safetensors tensor of its own, under its logical name.

Dtypes (``D`` and raw tensors): float32, float16, bfloat16, int8, uint8, int16, int32, int64,
bool (bytes 0 or 1). Shapes have at most 64 dimensions. The header is at most 16 MiB.

Writers make the JSON canonical (keys sorted, separators ``,`` and ``:``, ASCII, no NaN or
Infinity); nothing depends on time. So the same tensors and metadata give the same bytes, for
the same versions of wattless, zstandard and constriction. Readers accept any JSON object without
duplicate keys or non-finite numbers. A reader refuses a version higher than its own and asks for
an upgrade.
"""

import json
import math
from typing import Any

import torch

from .._json import canonical_json  # noqa: F401  (re-exported: the header text)

FORMAT_NAME = "wattless.wlz"
FORMAT_VERSION = 3
READABLE_VERSIONS = (1, 2, 3)
BUNDLE_NAME = "wattless"  # the one safetensors tensor of a version-2 or -3 file
MAX_HEADER_BYTES = 16 * 2**20  # the reader refuses a larger header (safetensors', or ours) before parsing it
MAX_NDIM = 64

# (name in the encodings table, torch dtype, safetensors dtype code)
_DTYPES = (
    ("float32", torch.float32, "F32"),
    ("float16", torch.float16, "F16"),
    ("bfloat16", torch.bfloat16, "BF16"),
    ("int8", torch.int8, "I8"),
    ("uint8", torch.uint8, "U8"),
    ("int16", torch.int16, "I16"),
    ("int32", torch.int32, "I32"),
    ("int64", torch.int64, "I64"),
    ("bool", torch.bool, "BOOL"),
)
DTYPE_BY_NAME: dict[str, torch.dtype] = {name: dtype for name, dtype, _ in _DTYPES}
NAME_BY_DTYPE: dict[torch.dtype, str] = {dtype: name for name, dtype, _ in _DTYPES}
SAFETENSORS_CODE: dict[torch.dtype, str] = {dtype: code for _, dtype, code in _DTYPES}
SUPPORTED_DTYPE_NAMES = ", ".join(DTYPE_BY_NAME)


class FormatError(Exception):
    """The file breaks the format; the message says how. The reader turns it into an ArtifactError."""


class NewerFormatError(FormatError):
    """The file was written in a format version newer than this reader knows."""


def parse_json_object(text: str, what: str) -> dict[str, Any]:
    """Parse `text` as a JSON object, refusing duplicate keys and non-finite numbers."""

    def refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [key for key, _ in pairs]
        if len(set(keys)) != len(keys):
            raise FormatError(f"{what} has a duplicate key")
        return dict(pairs)

    def finite_float(token: str) -> float:
        number = float(token)
        if not math.isfinite(number):
            raise FormatError(f"{what} holds a number out of range: {token[:20]}")
        return number

    def refuse_constant(token: str) -> None:
        raise FormatError(f"{what} holds {token}, which JSON does not allow")

    try:
        value = json.loads(
            text,
            object_pairs_hook=refuse_duplicates,
            parse_float=finite_float,
            parse_constant=refuse_constant,
        )
    except (ValueError, RecursionError) as error:
        raise FormatError(f"{what} is not valid JSON: {error}") from error
    if not isinstance(value, dict):
        raise FormatError(f"{what} is a JSON {type(value).__name__}, not an object")
    return value


def checked_nbytes(dtype: torch.dtype, shape: Any, max_bytes: int) -> int:
    """Bytes of a tensor of `dtype` and `shape` (a list of non-negative ints), at most `max_bytes`."""
    if not isinstance(shape, list) or len(shape) > MAX_NDIM:
        raise FormatError(f"shape must be a list of at most {MAX_NDIM} sizes, got {str(shape)[:40]}")
    if not all(type(size) is int and size >= 0 for size in shape):
        raise FormatError(f"shape must hold non-negative integers, got {str(shape)[:40]}")
    if 0 in shape:
        return 0
    nbytes = dtype.itemsize
    for size in shape:  # stops early, so a forged shape cannot make a huge integer
        nbytes *= size
        if nbytes > max_bytes:
            raise FormatError(f"a tensor of shape {str(shape)[:40]} would exceed the {max_bytes}-byte limit")
    return nbytes


def tensor_bytes(tensor: torch.Tensor) -> memoryview:
    """The C-order bytes of a contiguous CPU tensor, without a copy."""
    return memoryview(tensor.reshape(-1).view(torch.uint8).numpy())


def uint8_tensor(data: bytes) -> torch.Tensor:
    """A 1-D uint8 tensor holding a copy of `data` (which may be empty)."""
    return torch.frombuffer(bytearray(data), dtype=torch.uint8) if data else torch.empty(0, dtype=torch.uint8)
