"""The ``bitpack`` encoding: non-negative integer codes stored at their real bit width (1..16 bits).

Codes are packed least-significant bit first, code after code, into bytes (``np.packbits`` with
``bitorder="little"``); ``n`` codes of ``b`` bits take ``ceil(n * b / 8)`` bytes. The packed bytes
are then zstd-compressed when that is smaller (entropy coding of skewed code histograms).
Entry: ``{"encoding": "bitpack", "bits": b, "dtype": "int32", "shape": [...], "zstd": bool}``.
"""

from typing import Any

import numpy as np
import torch

from wattless.artifact.compression import smaller_with_zstd, stream_bytes
from wattless.artifact.format import DTYPE_BY_NAME, NAME_BY_DTYPE, FormatError, checked_nbytes, uint8_tensor

MAX_BITS = 16
_UNPACK_CHUNK = 2**16  # codes unpacked at a time, a multiple of 8: bounds the temporary bit planes
_CODE_DTYPES = {"uint8", "int16", "int32", "int64"}


def pack_bits(codes: np.ndarray, bits: int) -> bytes:
    """Pack non-negative integers below ``2**bits`` into ``ceil(len * bits / 8)`` bytes."""
    flat = np.ascontiguousarray(codes, dtype=np.uint32).reshape(-1)
    planes = ((flat[:, None] >> np.arange(bits, dtype=np.uint32)) & 1).astype(np.uint8)  # (n, bits)
    return np.packbits(planes.reshape(-1), bitorder="little").tobytes()


def unpack_bits(data: bytes, bits: int, count: int) -> np.ndarray:
    """The ``count`` codes of ``bits`` bits packed by :func:`pack_bits`, as uint32."""
    packed = np.frombuffer(data, dtype=np.uint8)
    weights = np.left_shift(np.uint32(1), np.arange(bits, dtype=np.uint32))
    codes = np.empty(count, dtype=np.uint32)
    for start in range(0, count, _UNPACK_CHUNK):
        stop = min(start + _UNPACK_CHUNK, count)
        chunk = packed[start * bits // 8 : packed_size(stop, bits)]
        planes = np.unpackbits(chunk, count=(stop - start) * bits, bitorder="little")
        codes[start:stop] = planes.reshape(-1, bits).astype(np.uint32) @ weights
    return codes


def packed_size(count: int, bits: int) -> int:
    """Bytes that ``count`` codes of ``bits`` bits take once packed."""
    return (count * bits + 7) // 8


def encode_bitpack(tensor: torch.Tensor, bits: int) -> tuple[torch.Tensor, dict[str, Any]]:
    """Pack integer codes at ``bits`` bits each (zstd on top when smaller)."""
    if not 1 <= bits <= MAX_BITS:
        raise ValueError(f"bitpack takes 1 to {MAX_BITS} bits, got {bits}")
    name = NAME_BY_DTYPE.get(tensor.dtype)
    if name not in _CODE_DTYPES:
        raise ValueError(f"bitpack stores integer codes, got {tensor.dtype}")
    codes = tensor.numpy()
    if codes.size and (codes.min() < 0 or codes.max() >= 2**bits):
        raise ValueError(f"codes must lie in [0, {2**bits - 1}] for {bits} bits")
    data, use_zstd = smaller_with_zstd(pack_bits(codes, bits))
    entry = {"encoding": "bitpack", "bits": bits, "dtype": name, "shape": list(tensor.shape), "zstd": use_zstd}
    return uint8_tensor(data), entry


def decode_bitpack(stored: torch.Tensor, entry: dict[str, Any], max_bytes: int) -> torch.Tensor:
    """Unpack after checking every field and the exact packed size, before allocating the codes."""
    if set(entry) != {"encoding", "bits", "dtype", "shape", "zstd"}:
        raise FormatError(f"bitpack entry has fields {sorted(entry)}")
    bits, name, use_zstd = entry["bits"], entry["dtype"], entry["zstd"]
    if not isinstance(bits, int) or isinstance(bits, bool) or not 1 <= bits <= MAX_BITS:
        raise FormatError(f"bitpack entry has bad bits {str(bits)[:20]}")
    if name not in _CODE_DTYPES or not isinstance(use_zstd, bool):
        raise FormatError("bitpack entry has a bad dtype or zstd flag")
    if stored.dtype != torch.uint8 or stored.dim() != 1:
        raise FormatError("bitpack data must be a 1-D uint8 tensor")
    dtype = DTYPE_BY_NAME[name]
    checked_nbytes(dtype, entry["shape"], max_bytes)
    count = int(np.prod(entry["shape"], dtype=np.int64))
    data = stream_bytes(stored.numpy().tobytes(), packed_size(count, bits), use_zstd, "bitpack")
    codes = unpack_bits(data, bits, count)
    if name == "uint8" and bits > 8 or name == "int16" and bits > 15:
        raise FormatError(f"{bits}-bit codes do not fit {name}")
    return torch.from_numpy(codes.astype(np.dtype(name))).reshape(entry["shape"])
