"""Where the bytes of a `.wlz` file go, tensor by tensor, and the entropy floor of what each tensor stores.

The file is its safetensors header (8 length bytes and the padded JSON: in version 1 it holds the metadata
too), in version 2 and later the 4-byte length and the compressed header frame, then the stored tensors.
Each stored tensor's bytes are split into a **positions** stream (where the non-zeros are) and a **values**
stream (the codes or values themselves):

- ``sparse``: the index stream is the positions, the rest the values;
- ``entropy``: one range-coder stream holds the mask then the values; it is split by the information each
  part carries under the coder's own adaptive models (sum of -log2 p, :func:`entropy.information_bits`),
  scaled to the stream's bytes and rounded to whole bytes;
- every other encoding: all values (a dense code or value stream, zeros included).

The **floor** of a tensor of ``n`` elements, ``K`` of them non-zero, is what an ideal coder without tables
or context needs for its symbols, in bytes: positions ``n * H(K / n) / 8`` (the i.i.d. mask entropy,
``H`` the binary entropy) and values ``K * H0 / 8`` for integer codes (``H0`` the order-0 empirical entropy
of the ``K`` non-zero codes, no table), or ``K * itemsize`` for floats (no model of float bits is claimed).
Together they are ``n`` times the order-0 entropy of all ``n`` codes. The ``entropy`` encoding's context
model (rows, columns, neighbours) can code the mask below the i.i.d. floor; nothing adaptive reaches H0
exactly, since it has to learn the frequencies that H0 takes as known.
"""

from __future__ import annotations

import json
import math
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np
import torch

from wattless.artifact.entropy import information_bits, matrix_shape
from wattless.artifact.reader import read_artifact, read_encodings, read_stored_sizes


def binary_entropy(p: float) -> float:
    """H(p) in bits: the entropy of a coin that comes up 1 with probability `p`."""
    return 0.0 if p <= 0 or p >= 1 else -(p * math.log2(p) + (1 - p) * math.log2(1 - p))


def order0_bits(symbols: np.ndarray) -> float:
    """``len(symbols) * H0`` in bits: the symbols' order-0 empirical entropy, no table."""
    if symbols.size == 0:
        return 0.0
    _, counts = np.unique(symbols, return_counts=True)
    return float(-(counts * np.log2(counts / symbols.size)).sum())


def floor_bytes(tensor: torch.Tensor) -> tuple[float, float]:
    """(positions, values) floor of `tensor` in bytes: ``n H(K/n) / 8`` and ``K H0 / 8`` (integer codes) or
    ``K * itemsize`` (floats), with ``K`` its non-zeros (-0.0 is zero)."""
    flat = tensor.reshape(-1)
    nonzero = flat[flat != 0]
    positions = flat.numel() * binary_entropy(nonzero.numel() / flat.numel()) / 8 if flat.numel() else 0.0
    if tensor.is_floating_point():
        return positions, float(nonzero.numel() * tensor.element_size())
    return positions, order0_bits(nonzero.numpy()) / 8


def _positions_bytes(tensor: torch.Tensor, entry: dict[str, Any], stored: int) -> int:
    """How many of the `stored` bytes hold the positions of the non-zeros (see the module docstring)."""
    if entry["encoding"] == "sparse":
        return int(entry["index_bytes"])
    if entry["encoding"] != "entropy" or stored == 0:
        return 0
    codes = tensor.numpy().astype(np.int64).reshape(matrix_shape(list(tensor.shape)))
    mask_bits, value_bits = information_bits(codes, entry["stride"], entry["alphabet"])
    return stored if mask_bits + value_bits <= 0 else round(stored * mask_bits / (mask_bits + value_bits))


def breakdown(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Bytes of a `.wlz` file by part, and each tensor's split and floor (see the module docstring).

    Returns ``{"file_bytes", "format_version", "safetensors_bytes", "header_bytes", "tensors"}``, where
    ``tensors`` maps each logical tensor's name to ``{"bytes", "positions", "values", "floor_positions",
    "floor_values", "encoding", "integer"}`` (bytes as stored; floors in bytes, fractional). The parts sum to
    the file's size: ``safetensors_bytes + header_bytes + sum of bytes``.

    Raises:
        ArtifactError: as :func:`read_artifact`.
    """
    path = Path(path)
    tensors, _ = read_artifact(path)
    encodings, sizes = read_encodings(path), read_stored_sizes(path)
    with open(path, "rb") as file:  # read_artifact has checked the layout already
        (length,) = struct.unpack("<Q", file.read(8))
        version = int(json.loads(file.read(length))["__metadata__"]["format_version"])
        header = 4 + struct.unpack("<I", file.read(4))[0] if version >= 2 else 0
    rows = {}
    for name in sorted(tensors):
        tensor, entry, stored = tensors[name], encodings[name], sizes[name]
        positions = _positions_bytes(tensor, entry, stored)
        floor_positions, floor_values = floor_bytes(tensor)
        rows[name] = {"bytes": stored, "positions": positions, "values": stored - positions,
                      "floor_positions": floor_positions, "floor_values": floor_values,
                      "encoding": entry["encoding"], "integer": not tensor.is_floating_point()}
    return {"file_bytes": path.stat().st_size, "format_version": version, "safetensors_bytes": 8 + length,
            "header_bytes": header, "tensors": rows}
