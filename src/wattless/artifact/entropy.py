"""The ``entropy`` encoding: integer codes of pruned and shared/quantized weights, range-coded.

The codes are viewed as a matrix (rows = the first dimension, the output channels; columns = the rest,
flattened) and coded in one range-coder stream (``constriction``'s ``RangeEncoder``, 32-bit words): first
where the non-zero codes are, then the non-zero codes themselves. Entry::

    {"encoding": "entropy", "dtype": D, "shape": [...], "nonzeros": K, "alphabet": A, "stride": s}

The stored tensor is 1-D uint8: the coder's 32-bit words, little-endian. The decoder refuses words
left over after the last code, except one: the range decoder reads a word ahead and cannot tell.

- **Mask** (``code != 0``), one bit per weight with an adaptive context model. A weight's context is
  how dense its column was in the rows above (a dead input pixel or feature stays dead), how dense its
  row was in the columns to its left (a dead neuron), and whether its left neighbour and the weight
  ``s`` columns to its left are non-zero (inputs that are a flattened grid: a 28 x 28 image gives
  ``s = 28``; ``s = 0`` leaves that context out). Each of the two densities is ``(count + a p0) /
  (seen + a) / p0`` with ``a = 16`` and ``p0 = (K + 1/2) / (numel + 1)``, put in one of 6 buckets at
  1/4, 1/2, 1, 2, 4. Each of the 144 contexts estimates ``P(non-zero) = (2 n1 + 1) / (2 n + 2)`` from
  its counts so far (Krichevsky-Trofimov). Cells are coded by anti-diagonals (``i + j = t``), whose
  cells depend only on earlier diagonals, so each diagonal is one vectorised call; counts are updated
  after each diagonal. So the matrix may have at most ``MAX_DIAGONALS`` diagonals (``rows + columns - 1``).
- **Values**: the ``K`` non-zero codes in C order, in ``1 .. A-1``, with adaptive order-0 frequencies
  ``2 count + 1``, updated after batches of 1, 1, 2, 4, 8, ... codes (vectorised, and cheaper than a
  stored frequency table on small tensors). With ``A = 2`` every non-zero code is 1 and none is coded.

Bytes on the codes of ``prune.magnitude`` (95%, global, gradual, 8 epochs) then ``share.kmeans`` (16
clusters) of LeNet-300-100 and LeNet-5 on Fashion-MNIST, against the best of ``bitpack`` and ``sparse``
(gap or bitmap index + zstd, byte-plane values + zstd); "i.i.d." is ``numel * H(K / numel)``, the mask's
bound without context, and H0 the order-0 entropy of the values (no table):

==================================  ==========  =========  =====  ==========  =========  =====  =======
tensor (rows x columns)             best older  entropy    ``s``  with s = 0  mask       i.i.d  values
==================================  ==========  =========  =====  ==========  =========  =====  =======
LeNet-300 fc1 (300 x 784)           11,095      10,324     28     10,752      6,164      7,372  4,160
LeNet-300 fc2 (100 x 300)           3,213       2,988      0      2,988       1,692      1,784  1,296
LeNet-300 fc3 (10 x 100)            315         280        0      280         128        121    152
LeNet-5 fc1 (120 x 400)             2,012       1,816      5      1,820       1,148      1,250  668
LeNet-5 fc2 (84 x 120)              912         780        0      780         456        494    324
LeNet-5 conv2 (16 x 150)            412         352        5      356         196        197    156
==================================  ==========  =========  =====  ==========  =========  =====  =======

The values come within 1-5% of H0 (4,138 for LeNet-300 fc1): contexts (row, column, neighbouring
values) did not predict them better once their learning cost was paid. Row and column densities
alone gave 4-8% under i.i.d. on the mask; the left neighbour, and the stride on LeNet-300 fc1 whose
columns are the 28 x 28 pixels, give the rest. The encoder estimates each stride's code length in
closed form (Krichevsky-Trofimov) on up to 2**18 weights and codes with the best one.

Everything the probabilities depend on is integers and float64 ``+ - * /`` (correctly rounded, the
same on every IEEE machine), and constriction quantizes them deterministically, so the bytes are
reproducible. The models are fixed by this module: changing one means a new encoding name.

:func:`information_bits` replays both models without coding: ``wattless inspect`` splits the stream's bytes
between the mask and the values in proportion to the bits each carries.

The context model is written here because no library offers one for this shape of data; the
arithmetic coding itself is constriction's.
"""

import math
from typing import Any

import constriction
import numpy as np
import torch

from wattless.artifact.format import DTYPE_BY_NAME, NAME_BY_DTYPE, FormatError, checked_nbytes, uint8_tensor

MAX_DIAGONALS = 2**16
"""At most this many anti-diagonals (rows + columns - 1): bounds the Python-level loop when decoding."""
MAX_ALPHABET = 2**16
STRIDES = range(2, 65)
"""Grid widths the encoder tries for the second neighbour context."""
_ESTIMATE_CELLS = 2**18  # at most this many weights (whole rows) for choosing the stride
_PRIOR = 16.0  # a: how many weights' worth of the tensor's mean density a row or column starts from
_EDGES = np.array([0.25, 0.5, 1.0, 2.0, 4.0])  # density relative to the tensor's, bucket boundaries
_BUCKETS = len(_EDGES) + 1
_CONTEXTS = _BUCKETS * _BUCKETS * 4
_CODE_DTYPES = {"uint8", "int16", "int32", "int64"}
_FIELDS = {"encoding", "dtype", "shape", "nonzeros", "alphabet", "stride"}


def _bernoulli():
    return constriction.stream.model.Bernoulli(perfect=False)


def _categorical(weights: np.ndarray):
    return constriction.stream.model.Categorical(weights, perfect=False)


def matrix_shape(shape: list[int]) -> tuple[int, int]:
    """(rows, columns) of the matrix view: the first dimension by the rest (a 1-D or 0-D tensor is one row)."""
    return (1, math.prod(shape)) if len(shape) < 2 else (shape[0], math.prod(shape[1:]))


class _MaskModel:
    """The adaptive context model of the mask, shared by the encoder and the decoder."""

    def __init__(self, rows: int, cols: int, nonzeros: int, stride: int):
        self.rows, self.cols, self.stride = rows, cols, stride
        self.p0 = (nonzeros + 0.5) / (rows * cols + 1)
        self.mask = np.zeros((rows, cols), dtype=np.bool_)
        self.col_count = np.zeros(cols, dtype=np.int64)
        self.row_count = np.zeros(rows, dtype=np.int64)
        self.ones = np.zeros(_CONTEXTS, dtype=np.int64)
        self.seen = np.zeros(_CONTEXTS, dtype=np.int64)

    def diagonals(self):
        """(row indices, column indices) of each anti-diagonal in coding order."""
        for t in range(self.rows + self.cols - 1):
            first, last = max(0, t - self.cols + 1), min(self.rows - 1, t)
            i = np.arange(first, last + 1)
            yield i, t - i

    def _bucket(self, count: np.ndarray, seen: np.ndarray) -> np.ndarray:
        density = (count + _PRIOR * self.p0) / ((seen + _PRIOR) * self.p0)
        return np.searchsorted(_EDGES, density, side="right")

    def _neighbour(self, i: np.ndarray, j: np.ndarray, step: int) -> np.ndarray:
        if step == 0:
            return np.zeros(len(i), dtype=np.int64)
        left = j - step
        return np.where(left >= 0, self.mask[i, np.maximum(left, 0)], False).astype(np.int64)

    def probabilities(self, i: np.ndarray, j: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The contexts of cells (i, j) of one diagonal and P(non-zero) for each."""
        context = (self._bucket(self.col_count[j], i) * _BUCKETS + self._bucket(self.row_count[i], j)) * 4
        context += self._neighbour(i, j, 1) * 2 + self._neighbour(i, j, self.stride)
        return context, (2 * self.ones[context] + 1) / (2 * self.seen[context] + 2)

    def update(self, i: np.ndarray, j: np.ndarray, context: np.ndarray, bits: np.ndarray) -> None:
        self.mask[i, j] = bits
        self.col_count[j] += bits
        self.row_count[i] += bits
        self.ones += np.bincount(context, weights=bits, minlength=_CONTEXTS).astype(np.int64)
        self.seen += np.bincount(context, minlength=_CONTEXTS)


def _value_batches(count: int):
    """(start, stop) of the batches of values coded with one set of frequencies: 1, 1, 2, 4, 8, ..."""
    start, size = 0, 1
    while start < count:
        yield start, min(start + size, count)
        start += size
        size = max(size, start)


def _value_weights(counts: np.ndarray) -> np.ndarray:
    return (2 * counts + 1).astype(np.float64)


def _coded_symbols(codes: np.ndarray, stride: int, alphabet: int):
    """The symbols of the (rows, cols) int64 `codes` in coding order, each with its model's probabilities:
    ``("mask", bits, P(non-zero))`` per anti-diagonal, then ``("values", batch, weights)`` per batch of non-zero
    codes (minus 1). The encoder codes them; :func:`information_bits` sums their -log2 p."""
    mask = codes != 0
    model = _MaskModel(*codes.shape, int(np.count_nonzero(mask)), stride)
    for i, j in model.diagonals():
        context, probability = model.probabilities(i, j)
        bits = mask[i, j]
        yield "mask", bits, probability
        model.update(i, j, context, bits)
    values = codes[mask] - 1
    counts = np.zeros(alphabet - 1, dtype=np.int64)
    for start, stop in _value_batches(len(values) if alphabet > 2 else 0):  # one possible value costs nothing
        batch = values[start:stop]
        yield "values", batch, _value_weights(counts)
        counts += np.bincount(batch, minlength=alphabet - 1)


def encode_mask_and_values(codes: np.ndarray, rows: int, cols: int, stride: int, alphabet: int) -> np.ndarray:
    """The range coder's words for the (rows, cols) int64 `codes` (values in 0 .. alphabet-1)."""
    encoder = constriction.stream.queue.RangeEncoder()
    for part, symbols, probabilities in _coded_symbols(codes.reshape(rows, cols), stride, alphabet):
        if part == "mask":
            encoder.encode(symbols.astype(np.int32), _bernoulli(), probabilities)
        else:
            encoder.encode(symbols.astype(np.int32), _categorical(probabilities))
    return encoder.get_compressed()


def information_bits(codes: np.ndarray, stride: int, alphabet: int) -> tuple[float, float]:
    """Bits (sum of -log2 p) that the mask and the values of the (rows, cols) int64 `codes` take under the
    coder's adaptive models: how :func:`encode_mask_and_values`'s one stream divides between the two."""
    bits = {"mask": 0.0, "values": 0.0}
    for part, symbols, probabilities in _coded_symbols(codes, stride, alphabet):
        if part == "mask":
            bits[part] -= float(np.log2(np.where(symbols, probabilities, 1 - probabilities)).sum())
        else:
            bits[part] -= float(np.log2(probabilities[symbols] / probabilities.sum()).sum())
    return bits["mask"], bits["values"]


def decode_mask_and_values(words: np.ndarray, rows: int, cols: int, stride: int, alphabet: int,
                           nonzeros: int) -> np.ndarray:
    """The (rows, cols) int64 codes from the coder's words; raises FormatError where they do not fit."""
    try:
        decoder = constriction.stream.queue.RangeDecoder(words)
        model = _MaskModel(rows, cols, nonzeros, stride)
        for i, j in model.diagonals():
            context, probability = model.probabilities(i, j)
            model.update(i, j, context, decoder.decode(_bernoulli(), probability).astype(np.bool_))
        found = int(np.count_nonzero(model.mask))
        if found != nonzeros:
            raise FormatError(f"entropy mask has {found} non-zeros, its entry says {nonzeros}")
        values = np.zeros(nonzeros, dtype=np.int64)
        counts = np.zeros(alphabet - 1, dtype=np.int64)
        for start, stop in _value_batches(nonzeros if alphabet > 2 else 0):
            values[start:stop] = decoder.decode(_categorical(_value_weights(counts)), stop - start)
            counts += np.bincount(values[start:stop], minlength=alphabet - 1)
        exhausted = decoder.maybe_exhausted()
    except FormatError:
        raise
    except Exception as error:  # constriction raises AssertionError (and may raise others) on invalid data
        raise FormatError(f"entropy stream is corrupt ({type(error).__name__})") from error
    if not exhausted:
        raise FormatError("entropy stream has data past its last code")
    codes = np.zeros((rows, cols), dtype=np.int64)
    codes[model.mask] = values + 1
    return codes


def best_stride(mask: np.ndarray) -> int:
    """The grid width ``s`` (or 0 for none) whose neighbour context most shortens the mask's code.

    Estimated without coding: the contexts computed from the whole mask at once and the adaptive
    (Krichevsky-Trofimov) code length of each context's bits, which depends only on its counts.
    """
    rows, cols = mask.shape
    if cols <= min(STRIDES):
        return 0
    mask = mask[: max(1, _ESTIMATE_CELLS // cols)]  # the first rows are sample enough, and keep this fast
    rows = mask.shape[0]
    p0 = (np.count_nonzero(mask) + 0.5) / (mask.size + 1)
    before_col = np.cumsum(mask, axis=0) - mask
    before_row = np.cumsum(mask, axis=1) - mask
    seen_col = np.arange(rows)[:, None]
    seen_row = np.arange(cols)[None, :]
    buckets = (np.searchsorted(_EDGES, (before_col + _PRIOR * p0) / ((seen_col + _PRIOR) * p0), side="right")
               * _BUCKETS
               + np.searchsorted(_EDGES, (before_row + _PRIOR * p0) / ((seen_row + _PRIOR) * p0), side="right"))
    left = np.zeros_like(mask)
    left[:, 1:] = mask[:, :-1]
    base = (buckets * 4 + left * 2).ravel()
    bits = mask.ravel()

    def cost(context: np.ndarray) -> float:
        seen = np.bincount(context, minlength=_CONTEXTS)
        ones = np.bincount(context, weights=bits, minlength=_CONTEXTS)
        return _kt_bits(ones, seen - ones)

    best, best_cost = 0, cost(base)
    for stride in STRIDES:
        if stride >= cols:
            break
        shifted = np.zeros_like(mask)
        shifted[:, stride:] = mask[:, :-stride]
        candidate = cost(base + shifted.ravel())
        if candidate < best_cost:
            best, best_cost = stride, candidate
    return best


def _kt_bits(ones: np.ndarray, zeros: np.ndarray) -> float:
    """Bits of the adaptive KT code of sequences with these counts: log2 of 1 / prod of its probabilities."""
    total = 0.0
    for n1, n0 in zip(ones.tolist(), zeros.tolist(), strict=True):
        total -= math.lgamma(n1 + 0.5) + math.lgamma(n0 + 0.5) - math.lgamma(n1 + n0 + 1) - 2 * math.lgamma(0.5)
    return total / math.log(2)


def encode_entropy(tensor: torch.Tensor) -> tuple[torch.Tensor, dict[str, Any]]:
    """Range-code integer codes in [0, 2**16); raises ValueError for other tensors or too many diagonals."""
    name = NAME_BY_DTYPE.get(tensor.dtype)
    if name not in _CODE_DTYPES:
        raise ValueError(f"entropy stores integer codes, got {tensor.dtype}")
    shape = list(tensor.shape)
    rows, cols = matrix_shape(shape)
    if rows + cols - 1 > MAX_DIAGONALS:
        raise ValueError(f"entropy codes matrices of at most {MAX_DIAGONALS} diagonals, got {rows} x {cols}")
    codes = tensor.numpy().astype(np.int64).reshape(rows, cols)
    if codes.size and (codes.min() < 0 or codes.max() >= MAX_ALPHABET):
        raise ValueError(f"entropy codes must lie in [0, {MAX_ALPHABET - 1}]")
    alphabet = max(2, int(codes.max()) + 1) if codes.size else 2
    stride = best_stride(codes != 0) if codes.size else 0
    words = encode_mask_and_values(codes, rows, cols, stride, alphabet) if codes.size else np.zeros(0, np.uint32)
    entry = {"encoding": "entropy", "dtype": name, "shape": shape, "nonzeros": int(np.count_nonzero(codes)),
             "alphabet": alphabet, "stride": stride}
    return uint8_tensor(words.astype("<u4").tobytes()), entry


def decode_entropy(stored: torch.Tensor, entry: dict[str, Any], max_bytes: int) -> torch.Tensor:
    """Decode after checking every field, the matrix's size against `max_bytes` and its diagonal count."""
    if set(entry) != _FIELDS:
        raise FormatError(f"entropy entry has fields {sorted(entry)[:12]}, expected {sorted(_FIELDS)}")
    name = entry["dtype"]
    if not isinstance(name, str) or name not in _CODE_DTYPES:
        raise FormatError(f"entropy entry has unsupported dtype {str(name)[:40]}")
    if stored.dtype != torch.uint8 or stored.dim() != 1 or stored.numel() % 4:
        raise FormatError("entropy data must be a 1-D uint8 tensor of whole 32-bit words")
    dtype = DTYPE_BY_NAME[name]
    shape = entry["shape"]
    numel = checked_nbytes(dtype, shape, max_bytes) // dtype.itemsize
    rows, cols = matrix_shape(shape)
    if rows + cols - 1 > MAX_DIAGONALS:
        raise FormatError(f"entropy entry has a {rows} x {cols} matrix, over {MAX_DIAGONALS} diagonals")
    nonzeros = _int_field(entry, "nonzeros", 0, numel)
    alphabet = _int_field(entry, "alphabet", 2, min(MAX_ALPHABET, np.iinfo(np.dtype(name)).max + 1))
    stride = _int_field(entry, "stride", 0, max(cols - 1, 0))
    if stride == 1:
        raise FormatError("entropy entry has stride 1, which the left-neighbour context covers already")
    words = np.frombuffer(stored.numpy().tobytes(), dtype="<u4").astype(np.uint32)
    if numel == 0:
        if len(words):
            raise FormatError("entropy data of an empty tensor must be empty")
        return torch.zeros(shape, dtype=dtype)
    codes = decode_mask_and_values(words, rows, cols, stride, alphabet, nonzeros)
    return torch.from_numpy(codes.astype(np.dtype(name))).reshape(shape)


def _int_field(entry: dict[str, Any], name: str, low: int, high: int) -> int:
    value = entry[name]
    if type(value) is not int or not low <= value <= high:
        raise FormatError(f"entropy entry has {name} {str(value)[:20]}, expected an integer in [{low}, {high}]")
    return value
