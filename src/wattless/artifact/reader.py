"""Read a `.wlz` file without trusting it.

Whatever the bytes, the reader returns or raises ArtifactError with one line naming the file.
It executes nothing from the file, and it allocates no more than the file's size plus a small
multiple of `max_tensor_bytes` per tensor: the header length is checked before parsing, every
shape and size before loading or decompressing.
"""

import os
import stat
import struct
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open

from wattless.artifact.encodings import ENCODINGS, Entry
from wattless.artifact.format import (
    FORMAT_NAME,
    FORMAT_VERSION,
    MAX_HEADER_BYTES,
    SAFETENSORS_CODE,
    FormatError,
    NewerFormatError,
    checked_nbytes,
    parse_json_object,
)
from wattless.errors import ArtifactError

_DTYPE_BY_SAFETENSORS_CODE = {code: dtype for dtype, code in SAFETENSORS_CODE.items()}
_METADATA_KEYS = {"encodings", "format", "format_version", "wattless"}
_REMEDY = "re-create it with `wattless train` or `wattless compress`"


def read_artifact(
    path: str | os.PathLike[str], *, max_tensor_bytes: int = 2**31
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Load the tensors (by name, sorted) and the user metadata of a `.wlz` file.

    Args:
        path: the `.wlz` file.
        max_tensor_bytes: the most bytes one tensor may take, stored or decoded; a file that
            asks for more is refused before anything that size is allocated.

    Raises:
        ArtifactError: the file is missing, unreadable, corrupt, or from a newer wattless.

    Example:
        >>> import os, tempfile
        >>> from wattless.artifact import write_artifact
        >>> path = os.path.join(tempfile.mkdtemp(), "model.wlz")
        >>> _ = write_artifact(path, {"fc.weight": torch.zeros(10, 4)}, {"model": "mlp"})
        >>> tensors, metadata = read_artifact(path)
        >>> tensors["fc.weight"].shape, metadata
        (torch.Size([10, 4]), {'model': 'mlp'})
    """
    path = Path(path)
    with _errors_name_the_file(path):
        _check_header_length(path)
        with safe_open(path, framework="pt", backend="pread") as file:
            metadata, table = _parse_file_metadata(file.metadata())
            _check_same_names(table, file.keys())
            for name in table:
                _check_stored_size(name, file.get_slice(name), max_tensor_bytes)
            tensors = {}
            for name in sorted(table):
                entry = table[name]
                tensor = ENCODINGS[entry["encoding"]].decode(file.get_tensor(name), entry, max_tensor_bytes)
                _check_bool_values(name, tensor)
                tensors[name] = tensor
    return tensors, metadata


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The user metadata of a `.wlz` file, read from its header without loading any tensor.

    Raises:
        ArtifactError: as `read_artifact`, for what the header shows.

    Example:
        >>> import os, tempfile
        >>> from wattless.artifact import write_artifact
        >>> path = os.path.join(tempfile.mkdtemp(), "model.wlz")
        >>> _ = write_artifact(path, {"fc.weight": torch.zeros(10, 4)}, {"model": "mlp"})
        >>> read_metadata(path)
        {'model': 'mlp'}
    """
    path = Path(path)
    with _errors_name_the_file(path):
        _check_header_length(path)
        with safe_open(path, framework="pt", backend="pread") as file:
            metadata, _ = _parse_file_metadata(file.metadata())
    return metadata


@contextmanager
def _errors_name_the_file(path: Path) -> Iterator[None]:
    """Turn every failure while reading `path` into one ArtifactError line that names it."""
    try:
        yield
    except ArtifactError:
        raise
    except NewerFormatError as error:
        raise ArtifactError(f"{path} {_one_line(error)}") from error
    except FormatError as error:
        raise ArtifactError(
            f"{path} is not a valid wattless model file ({_one_line(error)}); {_REMEDY}"
        ) from error
    except OSError as error:
        raise ArtifactError(f"cannot read {path}: {error.strerror or _one_line(error)}") from error
    except Exception as error:  # the parsers' own errors, whatever their type: this is the trust boundary
        reason = f"{type(error).__name__}: {_one_line(error)}"
        raise ArtifactError(f"{path} is not a valid wattless model file ({reason}); {_REMEDY}") from error


def _one_line(error: BaseException, limit: int = 200) -> str:
    """The error's message on one line (file contents can put newlines in it), cut to `limit` characters."""
    return " ".join(str(error).split())[:limit]


def _check_header_length(path: Path) -> None:
    """Refuse a missing or special file, and a header length that the file or MAX_HEADER_BYTES rules out."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise ArtifactError(f"{path} does not exist; check the path") from None
    if not stat.S_ISREG(info.st_mode):
        raise ArtifactError(f"{path} is not a regular file; give the path of a .wlz model file")
    with open(path, "rb") as file:
        prefix = file.read(8)
    if len(prefix) < 8:
        raise FormatError(f"bad header: the file has only {len(prefix)} bytes")
    (header_bytes,) = struct.unpack("<Q", prefix)
    if header_bytes > min(MAX_HEADER_BYTES, info.st_size - 8):
        raise FormatError(f"bad header: it claims {header_bytes} bytes in a file of {info.st_size}")


def _parse_file_metadata(file_metadata: dict[str, str] | None) -> tuple[dict[str, Any], dict[str, Entry]]:
    """Check the format name and version; return the user metadata and the encodings table."""
    if not file_metadata or file_metadata.get("format") != FORMAT_NAME:
        raise FormatError("bad header: a safetensors file without wattless metadata")
    version = file_metadata.get("format_version", "")
    if not (version.isascii() and version.isdigit() and 0 < len(version) < 10):
        raise FormatError(f"bad format version {version[:20]!r}")
    if int(version) > FORMAT_VERSION:
        raise NewerFormatError(
            f"uses .wlz format version {int(version)}, newer than this wattless reads ({FORMAT_VERSION}); "
            "upgrade wattless: pip install -U wattless"
        )
    if int(version) != FORMAT_VERSION or set(file_metadata) != _METADATA_KEYS:
        raise FormatError(f"bad header: metadata keys {sorted(file_metadata)[:8]} for version {version}")
    metadata = parse_json_object(file_metadata["wattless"], "the wattless metadata")
    table = parse_json_object(file_metadata["encodings"], "the encodings table")
    for name, entry in table.items():
        if not isinstance(entry, dict) or entry.get("encoding") not in ENCODINGS:
            raise FormatError(f"tensor {name[:80]!r} has an unknown encoding: {str(entry)[:80]}")
    return metadata, table


def _check_same_names(table: dict[str, Entry], stored_names: Iterable[str]) -> None:
    stored = set(stored_names)
    if stored != set(table):
        odd = sorted(stored.symmetric_difference(table))[:3]
        raise FormatError(f"the encodings table and the stored tensors differ, e.g. in {odd}")


def _check_stored_size(name: str, stored: Any, max_tensor_bytes: int) -> None:
    """Check a stored tensor's dtype and size from the header, before loading it."""
    dtype = _DTYPE_BY_SAFETENSORS_CODE.get(stored.get_dtype())
    if dtype is None:
        raise FormatError(f"tensor {name[:80]!r} has unsupported dtype {stored.get_dtype()[:20]}")
    checked_nbytes(dtype, list(stored.get_shape()), max_tensor_bytes)


def _check_bool_values(name: str, tensor: torch.Tensor) -> None:
    """A bool tensor holding a byte other than 0 or 1 behaves inconsistently in torch, so refuse it."""
    if tensor.dtype == torch.bool and tensor.numel() and int(tensor.view(torch.uint8).max()) > 1:
        raise FormatError(f"bool tensor {name[:80]!r} holds bytes other than 0 and 1")
