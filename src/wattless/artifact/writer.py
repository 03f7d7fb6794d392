"""Write a `.wlz` file: encode each tensor, lay out a version-3 safetensors file, replace the target atomically.

The safetensors layout is written here rather than by ``safetensors.torch.save``, because that
writer emits ``__metadata__`` keys in hash order, which changes from run to run. This writer
emits the same layout with the keys sorted; the reader parses files with safetensors itself.
"""

import contextlib
import json
import os
import struct
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, BinaryIO

import torch

from wattless._atomic import temporary_path
from wattless.artifact.encodings import AUTOMATIC_ENCODINGS, CODE_ENCODINGS, ENCODINGS, PARAMETRIC_ENCODERS, Entry
from wattless.artifact.format import (
    BUNDLE_NAME,
    FORMAT_NAME,
    FORMAT_VERSION,
    MAX_HEADER_BYTES,
    MAX_NDIM,
    NAME_BY_DTYPE,
    SUPPORTED_DTYPE_NAMES,
    canonical_json,
    tensor_bytes,
)
from wattless.artifact.header import compress_header
from wattless.errors import ArtifactError


def write_artifact(
    path: str | os.PathLike[str],
    tensors: Mapping[str, torch.Tensor],
    metadata: Mapping[str, Any],
    *,
    encodings: Mapping[str, str | tuple[str, dict]] | None = None,
) -> int:
    """Write `tensors` and JSON `metadata` to a `.wlz` file at `path` and return its size in bytes.

    Each tensor is stored with the encoding named in `encodings` (by tensor name; an encoding with
    options as ``("bitpack", {"bits": 4})``), or else with whichever of ``raw``, ``zstd`` and ``sparse``
    (tried when at least a quarter of the values are zero) is smallest. Integer codes named as
    ``bitpack`` are stored as ``sparse`` or ``entropy`` instead where that is smaller. The file is a
    version-3 ``.wlz`` file (see ``format.py``). The write is atomic: on any failure the file
    previously at `path`, if any, is left as it was.

    Raises:
        ArtifactError: an unsupported tensor, metadata that is not JSON, an unknown encoding, or
            a file that cannot be written.

    Example:
        >>> import os, tempfile
        >>> path = os.path.join(tempfile.mkdtemp(), "model.wlz")
        >>> write_artifact(path, {"fc.weight": torch.zeros(10, 4)}, {"model": "mlp"}) == os.path.getsize(path)
        True
    """
    user_json = _metadata_json(metadata)
    encodings = dict(encodings or {})
    unknown_names = sorted(set(encodings) - set(tensors))
    if unknown_names:
        raise ArtifactError(f"encodings name tensors that are not being written: {unknown_names[:5]}")
    stored: dict[str, torch.Tensor] = {}
    table: dict[str, Entry] = {}
    for name in sorted(tensors):
        tensor = _checked_cpu_tensor(name, tensors[name])
        stored[name], table[name] = _encode(tensor, encodings.get(name))
    header_text = canonical_json({
        "encodings": table,
        "stored": {name: [NAME_BY_DTYPE[value.dtype], list(value.shape)] for name, value in stored.items()},
        "wattless": json.loads(user_json),
    })
    if len(header_text) > MAX_HEADER_BYTES:
        raise ArtifactError(f"the file header would take {len(header_text)} bytes, over the {MAX_HEADER_BYTES} limit")
    frame = compress_header(header_text)
    prefix = struct.pack("<I", len(frame)) + frame
    bundle_bytes = len(prefix) + sum(value.nbytes for value in stored.values())
    header = _safetensors_header(bundle_bytes)
    path = Path(path)
    try:
        return _replace_atomically(path, lambda file: _write_body(file, header + prefix, stored))
    except OSError as error:
        raise ArtifactError(f"cannot write {path}: {error.strerror or error}") from error


def _checked_cpu_tensor(name: str, tensor: torch.Tensor) -> torch.Tensor:
    if not isinstance(name, str) or name == "__metadata__":
        raise ArtifactError(f"tensor name {name!r} cannot be stored; use a string other than '__metadata__'")
    if not isinstance(tensor, torch.Tensor):
        raise ArtifactError(f"{name!r} is a {type(tensor).__name__}, not a torch.Tensor")
    if tensor.dtype not in NAME_BY_DTYPE:
        raise ArtifactError(
            f"tensor {name!r} has dtype {tensor.dtype}, which .wlz files do not store; "
            f"convert it to one of: {SUPPORTED_DTYPE_NAMES}"
        )
    if tensor.dim() > MAX_NDIM:
        raise ArtifactError(
            f"tensor {name!r} has {tensor.dim()} dimensions; at most {MAX_NDIM} are supported"
        )
    return tensor.detach().to("cpu").contiguous()


def _encode(tensor: torch.Tensor, encoding: str | tuple[str, dict] | None) -> tuple[torch.Tensor, Entry]:
    if isinstance(encoding, tuple):
        name, options = encoding
        if name not in PARAMETRIC_ENCODERS:
            raise ArtifactError(f"encoding {name!r} takes no options; choose one of: {', '.join(PARAMETRIC_ENCODERS)}")
        try:
            packed = PARAMETRIC_ENCODERS[name](tensor, **options)
        except (TypeError, ValueError) as error:
            raise ArtifactError(f"cannot encode {tuple(tensor.shape)} {tensor.dtype} as {name}: {error}") from error
        # Codes of pruned weights are mostly the zero code, and shared weights' codes have skewed histograms:
        # positions plus kept codes, or an entropy coder, can beat the packed width.
        candidates = [packed]
        for code_encoding, worth_trying in CODE_ENCODINGS.items():
            if worth_trying(tensor):
                with contextlib.suppress(ValueError):  # codes its encoder does not take (e.g. out of range)
                    candidates.append(ENCODINGS[code_encoding].encode(tensor))
        return min(candidates, key=lambda candidate: candidate[0].nbytes)  # first wins a tie, so bitpack
    if encoding is not None:
        if encoding not in ENCODINGS:
            raise ArtifactError(f"unknown encoding {encoding!r}; choose one of: {', '.join(ENCODINGS)}")
        return ENCODINGS[encoding].encode(tensor)
    candidates = [ENCODINGS[name].encode(tensor) for name, worth_trying in AUTOMATIC_ENCODINGS.items()
                  if worth_trying(tensor)]
    return min(candidates, key=lambda candidate: candidate[0].nbytes)  # first wins a tie, so raw


def _metadata_json(metadata: Mapping[str, Any]) -> str:
    if not isinstance(metadata, Mapping):
        raise ArtifactError(f"metadata must be a dict, got {type(metadata).__name__}")
    try:
        return canonical_json(dict(metadata))
    except (TypeError, ValueError) as error:
        raise ArtifactError(
            f"metadata cannot be stored as JSON ({error}); use only dicts, lists, strings, finite numbers, "
            "booleans and None"
        ) from error


def _safetensors_header(bundle_bytes: int) -> bytes:
    """The safetensors header of a version-3 file (length, u64 LE, then JSON padded with spaces to a multiple
    of 8 bytes): the format's name and version, and the one uint8 tensor of `bundle_bytes` bytes."""
    header = {
        "__metadata__": {"format": FORMAT_NAME, "format_version": str(FORMAT_VERSION)},
        BUNDLE_NAME: {"dtype": "U8", "shape": [bundle_bytes], "data_offsets": [0, bundle_bytes]},
    }
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text


def _write_body(file: BinaryIO, header: bytes, stored: dict[str, torch.Tensor]) -> None:
    file.write(header)
    for name in sorted(stored):
        file.write(tensor_bytes(stored[name]))


def _replace_atomically(path: Path, write: Callable[[BinaryIO], None]) -> int:
    """Write a temp file next to `path` with `write(file)`, fsync it, rename it over `path`; bytes."""
    temp = temporary_path(path)  # .NAME.<pid>.<hex>.tmp; stale ones of killed writers are removed first
    # os.open with mode 0o666 lets the umask decide permissions, as a plain open() would.
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
            size = os.fstat(file.fileno()).st_size
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)
    return size


def _fsync_directory(directory: Path) -> None:
    """Make the rename durable where the platform allows it (POSIX); a no-op elsewhere."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    # The file is in place already; a file system that cannot fsync a folder is no reason to fail.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
