"""The ``sparse`` encoding: where the non-zeros are (an index stream), then their values.

The stored tensor is 1-D uint8: the index stream, then the values stream. Entry::

    {"encoding": "sparse", "dtype": D, "shape": [...], "nonzeros": K,
     "index": "bitmap" | "gaps", "gap_bits": b, "gap_entries": M,   # the two gap fields with "gaps" only
     "index_bytes": stored bytes of the index stream, "index_zstd": bool,
     "values_zstd": bool, "values_byte_planes": bool}

- ``bitmap``: one bit per element, set for a non-zero, packed least-significant bit first
  (``ceil(numel / 8)`` bytes, padding bits zero).
- ``gaps``: relative indices as in Deep Compression (Han et al., 2016): ``M`` codes of ``b`` bits
  (packed as ``bitpack`` packs them), one per non-zero giving the zeros before it since the previous
  one; the code ``2**b - 1`` is an escape that skips that many zeros and takes no value (unlike the
  paper's filler zeros, which cost a value each). The last code is not an escape.
- values: the ``K`` non-zeros in C order, little-endian; with ``values_byte_planes`` the ``itemsize``
  byte planes one after the other (byte 0 of every value, then byte 1, ...), which lets zstd find the
  few exponent values of trained weights. Each stream is one zstd frame when ``*_zstd``.

Zero means ``== 0``: -0.0 counts as zero and is read back as +0.0 (a pruned weight ``w * mask`` is
-0.0 where ``w < 0``, and keeping the sign would cost about a bit per pruned weight). Every other
value, NaN payloads included, comes back bit for bit; the decoder refuses a stored value that is zero.

The encoder keeps the smallest index stream among the bitmap and gaps at ``GAP_BITS``, each with or
without zstd, and the smallest values stream. Bytes on LeNet-300-100 (``runs/bench/lenet300.wlz``)
with its three weights pruned 90% per layer by magnitude (266,200 weights, 26,620 kept):

==============================================  ===================================
raw float32 / zstd alone (``zstd`` encoding)    1,064,800 / 169,319
index: bitmap / bitmap + zstd                   33,275 / 15,200
index: gaps at 4 bits / + zstd at 8, 4, 4 bits  17,705 / 14,925
index: gaps, ANS (constriction 0.5.0)           14,856 (best width per layer)
index: i.i.d. mask entropy, n * H(K / n)        15,606
values: raw / zstd / byte planes + zstd         106,480 / 94,994 / 85,942
values: byte planes, ANS / order-0 entropy      89,060 (with its tables) / 82,169
``sparse`` as written: index + values           100,854 (3% over 15,606 + 82,169)
==============================================  ===================================

Magnitude masks are not i.i.d. (the density varies from neuron to neuron and pixel to pixel), so
gaps + zstd beat the i.i.d. bound; ANS gains under 0.5% on the index and loses on the values, so
zstd it is. The whole file (biases and metadata too) takes 104,749 bytes, against 172,833 with zstd
alone and 1,068,096 raw. The writer tries ``sparse`` only on a tensor at least a quarter zeros
(``mostly_zero``), which costs a dense LeNet-300-100 well under 1 ms.
"""

from typing import Any

import numpy as np
import torch

from wattless.artifact.bitpack import pack_bits, packed_size, unpack_bits
from wattless.artifact.compression import compress, smaller_with_zstd, stream_bytes
from wattless.artifact.format import DTYPE_BY_NAME, NAME_BY_DTYPE, FormatError, checked_nbytes, uint8_tensor

GAP_BITS = range(2, 9)  # widths the encoder tries
MAX_GAP_BITS = 16
_UNSIGNED = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}  # values handled as their bits
_BITMAP_FIELDS = {"encoding", "dtype", "shape", "nonzeros", "index", "index_bytes", "index_zstd", "values_zstd",
                  "values_byte_planes"}  # fmt: skip
_FIELDS = {"bitmap": _BITMAP_FIELDS, "gaps": _BITMAP_FIELDS | {"gap_bits", "gap_entries"}}


def mostly_zero(tensor: torch.Tensor) -> bool:
    """Whether the writer should try ``sparse``: at least a quarter of the (one or more) values are zero."""
    count = tensor.numel()
    zeros = count - np.count_nonzero(_zero_where_zero(_unsigned_view(tensor), tensor.dtype))
    return count > 0 and 4 * zeros >= count


def _unsigned_view(tensor: torch.Tensor) -> np.ndarray:
    """The values of a contiguous tensor, flat, as unsigned integers of their width (no copy)."""
    return tensor.reshape(-1).view(torch.uint8).numpy().view(_UNSIGNED[tensor.dtype.itemsize])


def _zero_where_zero(values: np.ndarray, dtype: torch.dtype) -> np.ndarray:
    """Unsigned `values` with a float's sign shifted out, so zero exactly where the value is +0.0 or -0.0."""
    return values << 1 if dtype.is_floating_point else values


def gap_codes(positions: np.ndarray, bits: int) -> np.ndarray:
    """The ``gaps`` codes for strictly increasing non-zero `positions`, with escapes ``2**bits - 1``."""
    escape = 2**bits - 1
    gaps = np.diff(positions, prepend=-1) - 1
    escapes = gaps // escape
    codes = np.full(len(positions) + int(escapes.sum()), escape, dtype=np.uint32)
    codes[np.cumsum(escapes + 1) - 1] = gaps % escape
    return codes


def encode_sparse(tensor: torch.Tensor) -> tuple[torch.Tensor, dict[str, Any]]:
    """Store the non-zeros of `tensor` with the smallest index and values streams found."""
    flat = _unsigned_view(tensor)
    nonzero = _zero_where_zero(flat, tensor.dtype) != 0
    values = flat[nonzero]
    index_fields, index = min(_index_streams(nonzero), key=lambda candidate: len(candidate[1]))
    values_fields, values_data = min(_values_streams(values), key=lambda candidate: len(candidate[1]))
    entry = {"encoding": "sparse", "dtype": NAME_BY_DTYPE[tensor.dtype], "shape": list(tensor.shape),
             "nonzeros": len(values), **index_fields, "index_bytes": len(index), **values_fields}
    return uint8_tensor(index + values_data), entry


def _index_streams(nonzero: np.ndarray) -> list[tuple[dict[str, Any], bytes]]:
    """(entry fields, stored bytes) of the bitmap and of the gaps at each width, zstd-compressed when smaller."""
    bitmap, use_zstd = smaller_with_zstd(np.packbits(nonzero, bitorder="little").tobytes())
    streams = [({"index": "bitmap", "index_zstd": use_zstd}, bitmap)]
    positions = np.flatnonzero(nonzero)
    for bits in GAP_BITS:
        codes = gap_codes(positions, bits)
        packed, use_zstd = smaller_with_zstd(pack_bits(codes, bits))
        fields = {"index": "gaps", "gap_bits": bits, "gap_entries": len(codes), "index_zstd": use_zstd}
        streams.append((fields, packed))
    return streams


def _values_streams(values: np.ndarray) -> list[tuple[dict[str, Any], bytes]]:
    """(entry fields, stored bytes) of the values as they are, in zstd, and as zstd-compressed byte planes."""
    plain = values.tobytes()
    planes = values.view(np.uint8).reshape(len(values), values.itemsize).T.tobytes()
    return [
        ({"values_zstd": False, "values_byte_planes": False}, plain),
        ({"values_zstd": True, "values_byte_planes": False}, compress(plain)),
        ({"values_zstd": True, "values_byte_planes": True}, compress(planes)),
    ]


def decode_sparse(stored: torch.Tensor, entry: dict[str, Any], max_bytes: int) -> torch.Tensor:
    """Rebuild the dense tensor after checking every field and stream size, before allocating it."""
    index_kind = entry.get("index")
    if not isinstance(index_kind, str) or index_kind not in _FIELDS or set(entry) != _FIELDS[index_kind]:
        raise FormatError(f"sparse entry has fields {sorted(entry)[:12]} for index {str(index_kind)[:20]}")
    dtype = DTYPE_BY_NAME.get(entry["dtype"]) if isinstance(entry["dtype"], str) else None
    if dtype is None:
        raise FormatError(f"sparse entry has unsupported dtype {str(entry['dtype'])[:40]}")
    if stored.dtype != torch.uint8 or stored.dim() != 1:
        raise FormatError("sparse data must be a 1-D uint8 tensor")
    numel = checked_nbytes(dtype, entry["shape"], max_bytes) // dtype.itemsize
    count = _int_field(entry, "nonzeros", 0, numel)
    index_bytes = _int_field(entry, "index_bytes", 0, stored.numel())
    flags = [entry[name] for name in ("index_zstd", "values_zstd", "values_byte_planes")]
    if not all(isinstance(flag, bool) for flag in flags):
        raise FormatError("sparse entry has a zstd or byte-planes flag that is not true or false")
    if index_kind == "gaps":
        bits = _int_field(entry, "gap_bits", 1, MAX_GAP_BITS)
        # each escape skips 2**bits - 1 of the numel - count zeros
        entries = _int_field(entry, "gap_entries", count, count + (numel - count) // (2**bits - 1))
    data = stored.numpy().tobytes()
    index_size = packed_size(numel, 1) if index_kind == "bitmap" else packed_size(entries, bits)
    index = stream_bytes(data[:index_bytes], index_size, entry["index_zstd"], "sparse index")
    values = _values(data[index_bytes:], count, dtype, entry)
    if index_kind == "bitmap":
        positions = _bitmap_positions(index, numel, count)
    else:
        positions = _gap_positions(index, bits, entries, count, numel)
    dense = np.zeros(numel, dtype=values.dtype)
    dense[positions] = values
    return torch.from_numpy(dense.view(np.uint8)).view(dtype).reshape(entry["shape"])


def _int_field(entry: dict[str, Any], name: str, low: int, high: int) -> int:
    value = entry[name]
    if type(value) is not int or not low <= value <= high:
        raise FormatError(f"sparse entry has {name} {str(value)[:20]}, expected an integer in [{low}, {high}]")
    return value


def _values(data: bytes, count: int, dtype: torch.dtype, entry: dict[str, Any]) -> np.ndarray:
    """The `count` stored values as unsigned integers of their width, none of them a (signed) zero."""
    itemsize = dtype.itemsize
    raw = stream_bytes(data, count * itemsize, entry["values_zstd"], "sparse values")
    values = np.frombuffer(raw, dtype=np.uint8)
    if entry["values_byte_planes"]:
        values = np.ascontiguousarray(values.reshape(itemsize, count).T)
    values = values.view(_UNSIGNED[itemsize]).reshape(count)
    if not _zero_where_zero(values, dtype).all():
        raise FormatError("sparse values hold a zero, which the index should have left out")
    return values


def _bitmap_positions(bitmap: bytes, numel: int, count: int) -> np.ndarray:
    """The non-zero mask that `bitmap` encodes, checked to have `count` bits set and zero padding."""
    packed = np.frombuffer(bitmap, dtype=np.uint8)
    padding = packed[-1] >> (numel % 8) if numel % 8 else 0
    if padding or int(np.bitwise_count(packed).sum(dtype=np.int64)) != count:  # counted before unpacking
        raise FormatError(f"sparse bitmap does not have exactly {count} bits set among its {numel}")
    return np.unpackbits(packed, count=numel, bitorder="little").view(np.bool_)


def _gap_positions(packed: bytes, bits: int, entries: int, count: int, numel: int) -> np.ndarray:
    """The positions of the non-zeros from `entries` gap codes, checked to name `count` of them below `numel`."""
    if packed and packed[-1] >> (entries * bits % 8 or 8):
        raise FormatError("sparse gap codes have non-zero padding bits")
    codes = unpack_bits(packed, bits, entries)
    is_value = codes != 2**bits - 1
    if np.count_nonzero(is_value) != count or (entries and not is_value[-1]):
        raise FormatError(f"sparse gap codes do not give exactly {count} values, the last one a value")
    codes += is_value  # each code's step: a value code moves one past its zeros, an escape just skips
    positions = np.cumsum(codes, dtype=np.int64)[is_value] - 1  # strictly increasing: every step is >= 1
    if count and positions[-1] >= numel:
        raise FormatError(f"sparse gap codes reach position {positions[-1]}, past the {numel} elements")
    return positions
