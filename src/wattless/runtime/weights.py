"""A layer's weight as the C code stores it: read from the model's packed form, never expanded unless it must be.

Forms (``Weight.form``):

- ``f32``: dense floats (a layer that was never quantized);
- ``affine``: integer codes with a scale and offset per output channel, ``w = code * scale + offset``, computed as
  ``scale * sum(code * x) + offset * sum(x)`` (uniform PTQ, QAT, binary, ternary, per-row widths);
- ``lut``: integer codes into a table of values per tensor or per output channel (k-means sharing, histogram and
  normal landmarks, and any other packed kind whose weights take few distinct values).

Codes are stored at 1, 2, 4, 8 or 16 bits (a 3-bit code in a 4-bit slot). A weight that is mostly zeros is stored
sparse: per output channel, the non-zero entries' positions as one-byte gaps from the previous one (a gap of 255 or
more is written as 255-steps holding a zero entry) and their codes or values; a convolution's entries are its
non-zero taps. A linear layer's rows are padded with zero entries so that each starts on a whole byte of codes, and to
a multiple of :data:`ROW_MULTIPLE` when that adds at most :data:`PAD_BUDGET` of the entries: the C kernel reads
rows 8 entries at a time (their gaps as one word, their codes as another), and a row with no remainder saves the
remainder loop's mispredicted exit, which costs more than the padding on rows of a few dozen entries. Everything
here is data; :mod:`.emit` writes it as C.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from torch import nn
from torch.nn.utils import parametrize

from ..packed import AffineWeight, CodebookWeight, PackedWeight, RowAffineWeight

SPARSE_BELOW = 0.5
"""Store a weight sparse when fewer than this share of its entries are non-zero."""
MAX_LUT_VALUES = 256
"""A packed kind without a C form of its own becomes a table of its distinct values when it has at most this many."""
GAP_LIMIT = 255
ROW_MULTIPLE = 8
"""Entries per sparse row of a linear layer are a multiple of this (zero entries pad them) when it is cheap."""
PAD_BUDGET = 0.125
"""The largest share of entries that padding rows to :data:`ROW_MULTIPLE` may add."""


@dataclass
class Weight:
    """A (out, per_out) matrix of weights: ``form`` ``f32`` (``values``), ``affine`` (``codes``, ``scale``,
    ``offset``) or ``lut`` (``codes``, ``table``: (1, L) per tensor or (out, L) per channel); sparse when
    ``row_ptr`` is set, with ``gaps`` and per-entry ``values``/``codes``."""

    form: str
    rows: int
    cols: int
    bits: int = 32
    values: np.ndarray | None = None
    codes: np.ndarray | None = None
    scale: np.ndarray | None = None
    offset: np.ndarray | None = None
    table: np.ndarray | None = None
    row_ptr: np.ndarray | None = None
    gaps: np.ndarray | None = None
    note: str = ""

    @property
    def sparse(self) -> bool:
        return self.row_ptr is not None

    @property
    def entries(self) -> int:
        """Stored weight entries (all of them when dense; non-zeros plus gap fillers when sparse)."""
        return int(self.row_ptr[-1]) if self.sparse else self.rows * self.cols


def storage_bits(bits: int) -> int:
    """The code slot width the C code reads: 1, 2, 4, 8 or 16 bits."""
    return next(width for width in (1, 2, 4, 8, 16) if bits <= width)


def layer_weight(module: nn.Module) -> Weight:
    """The C form of ``module.weight`` (reshaped to (out channels, the rest)), from its packed form when it has one."""
    packed = packed_weight(module)
    dense = (packed.decode() if packed is not None else module.weight).detach().float()
    rows = dense.shape[0]
    matrix = dense.reshape(rows, -1).numpy()
    if isinstance(packed, AffineWeight | RowAffineWeight):
        weight = _affine(packed, rows)
    elif isinstance(packed, CodebookWeight):
        table = packed.codebook.detach().float().numpy()
        table = table.reshape(1, -1) if table.ndim == 1 else table.reshape(rows, -1)
        weight = Weight("lut", rows, matrix.shape[1], storage_bits(packed.bits),
                        codes=packed.codes.reshape(rows, -1).numpy().astype(np.int64), table=table)
    elif packed is not None:
        weight = _distinct_values(matrix, f"its packed kind {packed.kind!r}")
    else:
        weight = Weight("f32", rows, matrix.shape[1], values=matrix.astype(np.float32))
    zero = matrix == 0
    if zero.mean() > 1 - SPARSE_BELOW and _has_zero_code(weight):
        _make_sparse(weight, ~zero, _row_multiple(weight, ~zero) if isinstance(module, nn.Linear) else 1)
    return weight


def packed_weight(module: nn.Module) -> PackedWeight | None:
    """The packed form ``module.weight`` is stored in (its last parametrization), or None for plain floats."""
    if parametrize.is_parametrized(module, "weight"):
        last = module.parametrizations.weight[-1]
        return last if isinstance(last, PackedWeight) else None
    return None


def _affine(packed: AffineWeight | RowAffineWeight, rows: int) -> Weight:
    codes = packed.codes.reshape(rows, -1).numpy().astype(np.int64)
    scale = np.broadcast_to(packed.scale.detach().float().numpy().reshape(-1), (rows,)).astype(np.float32)
    offset = np.broadcast_to(packed.offset.detach().float().numpy().reshape(-1), (rows,)).astype(np.float32)
    return Weight("affine", rows, codes.shape[1], storage_bits(int(packed.bits)), codes=codes, scale=scale.copy(),
                  offset=offset.copy())


def _distinct_values(matrix: np.ndarray, what: str) -> Weight:
    """Few distinct values: a per-tensor table and codes; else dense floats (said in ``note``)."""
    table, codes = np.unique(matrix, return_inverse=True)
    if len(table) > MAX_LUT_VALUES:
        return Weight("f32", *matrix.shape, values=matrix.astype(np.float32),
                      note=f"stored as floats: {what} has no C form and {len(table)} distinct values")
    bits = max(1, int(np.ceil(np.log2(len(table)))))
    return Weight("lut", *matrix.shape, storage_bits(bits), codes=codes.reshape(matrix.shape).astype(np.int64),
                  table=table.reshape(1, -1).astype(np.float32), note=f"{what}: a table of its distinct values")


def _row_multiple(weight: Weight, keep: np.ndarray) -> int:
    """:data:`ROW_MULTIPLE` when padding every row to it costs at most :data:`PAD_BUDGET` more entries, else the
    codes per byte (rows then start on whole bytes)."""
    per_byte = 8 // weight.bits if weight.form != "f32" and weight.bits < 8 else 1
    counts = keep.sum(axis=1)
    padding = (-counts % ROW_MULTIPLE).sum()
    return ROW_MULTIPLE if padding <= PAD_BUDGET * max(int(counts.sum()), 1) else per_byte


def _make_sparse(weight: Weight, keep: np.ndarray, multiple: int = 1) -> None:
    """Keep only the ``keep`` entries of each row, positions as gaps (<= 255, filler zero entries beyond), each
    row padded with zero entries (gap 0) to a multiple of ``multiple`` entries."""
    row_ptr, gaps, picked = [0], [], []
    for row in range(weight.rows):
        previous = 0
        for col in np.flatnonzero(keep[row]):
            gap = int(col) - previous
            while gap > GAP_LIMIT:  # a filler entry that contributes nothing
                gaps.append(GAP_LIMIT)
                picked.append((row, -1))
                gap -= GAP_LIMIT
            gaps.append(gap)
            picked.append((row, int(col)))
            previous = int(col)
        while (len(gaps) - row_ptr[-1]) % multiple:
            gaps.append(0)
            picked.append((row, -1))
        row_ptr.append(len(gaps))
    weight.row_ptr = np.asarray(row_ptr, dtype=np.int64)
    weight.gaps = np.asarray(gaps, dtype=np.uint8)
    rows = np.asarray([r for r, _ in picked], dtype=np.int64)
    cols = np.asarray([c for _, c in picked], dtype=np.int64)
    filler = cols < 0
    cols = np.where(filler, 0, cols)
    if weight.form == "f32":
        weight.values = np.where(filler, 0.0, weight.values[rows, cols]).astype(np.float32)
    else:
        weight.codes = weight.codes[rows, cols]
        weight.codes[filler] = _zero_code(weight, rows[filler])


def _zero_codes(weight: Weight) -> np.ndarray | None:
    """Per row, a code whose weight is exactly zero (what a filler entry holds), or None if a row has none."""
    if weight.form == "f32":
        return np.zeros(weight.rows, dtype=np.int64)
    if weight.form == "lut":
        table = np.broadcast_to(weight.table, (weight.rows, weight.table.shape[1]))
        codes = np.argmin(np.abs(table), axis=1)
        exact = table[np.arange(weight.rows), codes] == 0
    else:
        scale = np.where(weight.scale == 0, 1, weight.scale)
        codes = np.clip(np.rint(-weight.offset / scale), 0, 2 ** weight.bits - 1).astype(np.int64)
        exact = (codes.astype(np.float32) * weight.scale + weight.offset) == 0
    return codes if exact.all() else None


def _has_zero_code(weight: Weight) -> bool:
    return _zero_codes(weight) is not None


def _zero_code(weight: Weight, rows: np.ndarray) -> np.ndarray:
    return _zero_codes(weight)[rows]


def integer_codes(module: nn.Module) -> bool:
    """Whether the layer's weight is integer codes of at most 8 bits with a scale and offset per output channel
    (what the integer kernel multiplies with quantized activations, summing in int32)."""
    packed = packed_weight(module)
    return isinstance(packed, AffineWeight | RowAffineWeight) and int(packed.bits) <= 8


def bias_of(module: nn.Module) -> np.ndarray | None:
    bias = getattr(module, "bias", None)
    return None if bias is None else bias.detach().float().numpy().astype(np.float32)


def pack_codes(codes: np.ndarray, bits: int) -> np.ndarray:
    """Codes at ``bits`` (1, 2, 4, 8 or 16) per slot, little-endian within each byte: uint8 (or uint16) array."""
    codes = np.asarray(codes, dtype=np.int64).reshape(-1)
    if bits == 16:
        return codes.astype(np.uint16)
    if bits == 8:
        return codes.astype(np.uint8)
    per_byte = 8 // bits
    padded = np.zeros(-(-len(codes) // per_byte) * per_byte, dtype=np.int64)
    padded[: len(codes)] = codes
    shifts = np.arange(per_byte, dtype=np.int64) * bits
    return (padded.reshape(-1, per_byte) << shifts).sum(axis=1).astype(np.uint8)
