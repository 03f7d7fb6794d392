"""Read a `.wlz` file without trusting it.

Whatever the bytes, the reader returns or raises ArtifactError with one line naming the file.
It executes nothing from the file, and it allocates no more than the file's size plus a small
multiple of `max_tensor_bytes` per tensor: the header length is checked before parsing, every
shape and size before loading or decompressing.
"""

import math
import os
import stat
import struct
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open

from wattless.artifact.encodings import ENCODINGS, Entry
from wattless.artifact.format import (
    BUNDLE_NAME,
    DTYPE_BY_NAME,
    FORMAT_NAME,
    FORMAT_VERSION,
    MAX_HEADER_BYTES,
    READABLE_VERSIONS,
    SAFETENSORS_CODE,
    FormatError,
    NewerFormatError,
    checked_nbytes,
    parse_json_object,
    uint8_tensor,
)
from wattless.artifact.header import decompress_header
from wattless.errors import ArtifactError

Layout = dict[str, tuple[torch.dtype, list[int], int]]
"""Each stored tensor of a version-2 or -3 file: dtype, shape, and offset of its bytes in the bundle."""


_DTYPE_BY_SAFETENSORS_CODE = {code: dtype for dtype, code in SAFETENSORS_CODE.items()}
_METADATA_KEYS = {1: {"encodings", "format", "format_version", "wattless"}, 2: {"format", "format_version"},
                  3: {"format", "format_version"}}
_REMEDY = "re-create it with `wattless train` or `wattless compress`"


def read_artifact(
    path: str | os.PathLike[str], *, max_tensor_bytes: int = 2**31, tensor_limit: Callable[[str], int] | None = None
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Load the tensors (by name, sorted) and the user metadata of a `.wlz` file.

    Args:
        path: the `.wlz` file.
        max_tensor_bytes: the most bytes one tensor may take, stored or decoded; a file that
            asks for more is refused before anything that size is allocated.
        tensor_limit: the most bytes the tensor of a given name may decode to (at most `max_tensor_bytes`),
            e.g. what the model the metadata describes holds; a larger one is refused before it is decoded.

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
            version = _format_version(file.metadata())
            if version == 1:
                metadata, table = _parse_version_1_metadata(file.metadata())
                _check_same_names(table, file.keys())
                for name in table:
                    _check_stored_size(name, file.get_slice(name), max_tensor_bytes)
                stored_tensor = file.get_tensor
            else:
                bundle = _bundle(file)
                metadata, table, layout = _read_bundle_header(bundle, max_tensor_bytes, version)
                stored_tensor = _bundle_reader(bundle, layout)
            tensors = {}
            for name in sorted(table):
                entry = table[name]
                limit = max_tensor_bytes if tensor_limit is None else min(max_tensor_bytes, tensor_limit(name))
                try:
                    tensor = ENCODINGS[entry["encoding"]].decode(stored_tensor(name), entry, limit)
                except FormatError as error:
                    raise FormatError(f"tensor {name[:80]!r}: {error}") from error
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
    return _read_header(Path(path))[0]


def read_encodings(path: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """How each tensor of a `.wlz` file is stored: its entry in the encodings table, by name (header only).

    Raises:
        ArtifactError: as `read_metadata`.
    """
    return _read_header(Path(path))[1]


def read_stored_sizes(path: str | os.PathLike[str]) -> dict[str, int]:
    """Bytes each tensor of a `.wlz` file takes on disk, as stored (after its encoding), by name (header only).

    Raises:
        ArtifactError: as `read_metadata`.
    """
    path = Path(path)
    with _errors_name_the_file(path):
        _check_header_length(path)
        with safe_open(path, framework="pt", backend="pread") as file:
            version = _format_version(file.metadata())
            if version == 1:
                return {name: math.prod(file.get_slice(name).get_shape())
                        * _DTYPE_BY_SAFETENSORS_CODE[file.get_slice(name).get_dtype()].itemsize
                        for name in file.keys()}
            bundle = _bundle(file)
            _, _, layout = _read_bundle_header(bundle, max(bundle.get_shape()[0], 1), version)
            return {name: math.prod(shape) * dtype.itemsize for name, (dtype, shape, _) in layout.items()}


def _read_header(path: Path) -> tuple[dict[str, Any], dict[str, Entry]]:
    """The user metadata and the encodings table, all of the header checked, no tensor read."""
    with _errors_name_the_file(path):
        _check_header_length(path)
        with safe_open(path, framework="pt", backend="pread") as file:
            version = _format_version(file.metadata())
            if version == 1:
                return _parse_version_1_metadata(file.metadata())
            bundle = _bundle(file)
            metadata, table, _ = _read_bundle_header(bundle, max(bundle.get_shape()[0], 1), version)
            return metadata, table


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


def _format_version(file_metadata: dict[str, str] | None) -> int:
    """The file's format version, after checking the format name; a newer version asks for an upgrade."""
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
    if int(version) not in READABLE_VERSIONS or set(file_metadata) != _METADATA_KEYS[int(version)]:
        raise FormatError(f"bad header: metadata keys {sorted(file_metadata)[:8]} for version {version}")
    return int(version)


def _parse_version_1_metadata(file_metadata: dict[str, str]) -> tuple[dict[str, Any], dict[str, Entry]]:
    """The user metadata and the encodings table of a version-1 file, from its safetensors metadata."""
    metadata = parse_json_object(file_metadata["wattless"], "the wattless metadata")
    table = parse_json_object(file_metadata["encodings"], "the encodings table")
    _check_table(table)
    return metadata, table


def _check_table(table: dict[str, Any]) -> None:
    for name, entry in table.items():
        if not isinstance(entry, dict) or entry.get("encoding") not in ENCODINGS:
            raise FormatError(f"tensor {name[:80]!r} has an unknown encoding: {str(entry)[:80]}")


def _bundle(file: Any) -> Any:
    """The slice of the one uint8 tensor of a version-2 or -3 file (nothing read yet)."""
    if list(file.keys()) != [BUNDLE_NAME]:
        raise FormatError(f"a version-2 or -3 file holds one tensor, {BUNDLE_NAME!r}; found {sorted(file.keys())[:3]}")
    bundle = file.get_slice(BUNDLE_NAME)
    if bundle.get_dtype() != "U8" or len(bundle.get_shape()) != 1:
        raise FormatError(f"tensor {BUNDLE_NAME!r} must be 1-D uint8")
    return bundle


def _read_bundle_header(bundle: Any, max_tensor_bytes: int,
                        version: int) -> tuple[dict[str, Any], dict[str, Entry], Layout]:
    """Read and check a version-2 or -3 header: user metadata, encodings table, and where each stored tensor lies.

    Every stored tensor's size is checked against `max_tensor_bytes`, and their sum against the bundle's
    size, before anything but the header is read.
    """
    size = bundle.get_shape()[0]
    if size < 4:
        raise FormatError(f"bad header: tensor {BUNDLE_NAME!r} has {size} bytes, too few for its header length")
    (frame_bytes,) = struct.unpack("<I", _bytes(bundle, 0, 4))
    if frame_bytes > min(size - 4, MAX_HEADER_BYTES):
        raise FormatError(f"bad header: it claims {frame_bytes} bytes in a tensor of {size}")
    header = parse_json_object(decompress_header(_bytes(bundle, 4, 4 + frame_bytes), version), "the header")
    if set(header) != {"encodings", "stored", "wattless"}:
        raise FormatError(f"bad header: keys {sorted(header)[:8]}, expected encodings, stored and wattless")
    for key, value in sorted(header.items()):
        if not isinstance(value, dict):
            raise FormatError(f"bad header: its {key} is a JSON {type(value).__name__}, not an object")
    table, metadata = header["encodings"], header["wattless"]
    _check_table(table)
    _check_same_names(table, header["stored"])
    layout: Layout = {}
    offset = 4 + frame_bytes
    for name in sorted(header["stored"]):
        description = header["stored"][name]
        if not (isinstance(description, list) and len(description) == 2 and isinstance(description[0], str)
                and description[0] in DTYPE_BY_NAME):
            raise FormatError(f"stored tensor {name[:80]!r} has a bad description {str(description)[:80]}")
        dtype, shape = DTYPE_BY_NAME[description[0]], description[1]
        nbytes = checked_nbytes(dtype, shape, max_tensor_bytes)
        if offset + nbytes > size:
            raise FormatError(f"stored tensor {name[:80]!r} runs past the end of the file")
        layout[name] = (dtype, shape, offset)
        offset += nbytes
    if offset != size:
        raise FormatError(f"the stored tensors take {offset} bytes of the {size} in {BUNDLE_NAME!r}")
    return metadata, table, layout


def _bytes(bundle: Any, start: int, stop: int) -> bytes:
    return bundle[start:stop].numpy().tobytes() if stop > start else b""


def _bundle_reader(bundle: Any, layout: Layout) -> Callable[[str], torch.Tensor]:
    """A function reading one stored tensor of a version-2 or -3 file by name (its bytes copied, so aligned)."""

    def read(name: str) -> torch.Tensor:
        dtype, shape, offset = layout[name]
        count = math.prod(shape) * dtype.itemsize
        return uint8_tensor(_bytes(bundle, offset, offset + count)).view(dtype).reshape(shape)

    return read


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
