"""Pure helpers of post-training quantization: value ranges, landmark sets and rounding onto them.

Every function works on ``rows``, a weight reshaped to (C, N): one row per quantization group (C output
channels for per-channel quantization, C = 1 for per-tensor). Ranges are (C,) tensors; landmark sets are
(C, L) tensors sorted ascending along each row; codes are (C, N) int64 indices into a row's landmarks.
"""

from __future__ import annotations

import math

import torch

LLOYD_MAX_ITERATIONS = 20
"""Lloyd-Max refinement steps after the quantile start; on trained MLPs at 2-4 bits, 20 steps give
most of the squared-error reduction that 30 give."""


def value_range(rows: torch.Tensor, symmetric: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row range ``(lo, hi)``: ``[-max|w|, max|w|]`` when ``symmetric``, else ``[min w, max w]``."""
    if symmetric:
        m = rows.abs().amax(dim=1)
        return -m, m
    return rows.amin(dim=1), rows.amax(dim=1)


def midrise(rows: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor,
            bits: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mid-rise quantizer: ``[lo, hi]`` split into 2^bits bins of width ``D = (hi - lo) / 2^bits``, each
    value sent to the centre of its bin.

    Returns ``(codes, D, lo + D/2)``: code ``k = clip(floor((w - lo) / D), 0, 2^bits - 1)`` decodes to
    ``k * D + lo + D/2 = lo + D (k + 1/2)``. On a symmetric range this is ``D (floor(w / D) + 1/2)``
    clipped to the range (issue 4). A zero range (all values equal) gives ``D = 0`` and code 0.
    """
    width = (hi - lo) / 2**bits
    safe_width = torch.where(width > 0, width, torch.ones_like(width))
    codes = torch.floor((rows - lo[:, None]) / safe_width[:, None]).clamp(0, 2**bits - 1).long()
    return codes, width, lo + width / 2


def uniform_step(lo: torch.Tensor, hi: torch.Tensor, bits: int) -> torch.Tensor:
    """Spacing of 2^bits evenly spaced landmarks from ``lo`` to ``hi`` inclusive: ``(hi - lo) / (2^bits - 1)``."""
    return (hi - lo) / (2**bits - 1)


def uniform_landmarks(lo: torch.Tensor, hi: torch.Tensor, bits: int) -> torch.Tensor:
    """2^bits evenly spaced landmarks per row, ``lo + k * step`` for k = 0 .. 2^bits - 1, computed exactly as
    an affine decode ``codes * scale + offset`` computes them, so decoded weights are landmarks bit for bit."""
    k = torch.arange(2**bits, dtype=lo.dtype, device=lo.device)
    return k[None, :] * uniform_step(lo, hi, bits)[:, None] + lo[:, None]


def quantile_probabilities(count: int, dtype: torch.dtype = torch.float32,
                           device: torch.device | None = None) -> torch.Tensor:
    """The ``count`` mid-point probabilities ``(i + 0.5) / count``, i = 0 .. count - 1."""
    return (torch.arange(count, dtype=dtype, device=device) + 0.5) / count


def row_quantiles(sorted_rows: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
    """Quantiles (C, len(probs)) of each ascending row by linear interpolation (NumPy's default method);
    unlike ``torch.quantile`` it has no input size limit."""
    n = sorted_rows.shape[1]
    position = probs * (n - 1)
    below = position.floor().long().clamp(0, n - 1)
    above = (below + 1).clamp(max=n - 1)
    low, high = sorted_rows[:, below], sorted_rows[:, above]
    return low + (position - below.to(probs.dtype)) * (high - low)


def distinct_sorted_rows(landmarks: torch.Tensor) -> torch.Tensor:
    """Each ascending row with duplicates removed, shifted left and padded by repeating the row's last
    value, to the width of the row with the most distinct values: (C, K) with K <= L."""
    first = torch.ones_like(landmarks, dtype=torch.bool)
    first[:, 1:] = landmarks[:, 1:] != landmarks[:, :-1]
    if first.all():
        return landmarks
    slot = first.long().cumsum(dim=1) - 1  # new position of every value; duplicates share their first one's
    width = int(slot[:, -1].max()) + 1
    return landmarks[:, -1:].repeat(1, width).scatter_(1, slot, landmarks)


def lloyd_max(rows: torch.Tensor, landmarks: torch.Tensor, iterations: int = LLOYD_MAX_ITERATIONS) -> torch.Tensor:
    """Lloyd-Max iterations (Lloyd 1982; Max 1960): alternately cut each row at the mid-points between
    landmarks and move every landmark to the mean of the values in its cell (empty cells stay put).

    Each step lowers the mean squared rounding error; the order of the landmarks is kept, since every
    cell mean lies inside its cell.
    """
    for _ in range(iterations):
        cuts = ((landmarks[:, 1:] + landmarks[:, :-1]) / 2).contiguous()
        cell = torch.searchsorted(cuts, rows)
        sums = torch.zeros_like(landmarks).scatter_add_(1, cell, rows)
        sizes = torch.zeros_like(landmarks).scatter_add_(1, cell, torch.ones_like(rows))
        landmarks = torch.where(sizes > 0, sums / sizes.clamp(min=1), landmarks)
    # a cell mean can land an ulp outside its cell; re-sorting keeps searchsorted's precondition
    return landmarks.sort(dim=1).values


def histogram_landmarks(rows: torch.Tensor, count: int, iterations: int = LLOYD_MAX_ITERATIONS) -> torch.Tensor:
    """Density-following landmarks: each row's ``(i + 0.5) / count`` quantiles (equal numbers of weights
    between neighbours), refined by ``iterations`` Lloyd-Max steps, then deduplicated (C, K <= count).

    Pure quantiles put landmarks at density^1 and leave the few large weights far from any landmark;
    Lloyd-Max moves toward the minimum-squared-error set (landmark density ~ density^(1/3), Panter and
    Dite 1951), which still crowds landmarks where weights are dense but rounds the tails better: on a
    LeNet-300-100 trained on Fashion-MNIST, 3 bits per channel, it halved the squared rounding error and
    lifted test accuracy from 86.1% to 87.6%. A row of at most ``count`` weights gets its own values.
    """
    sorted_rows = rows.sort(dim=1).values
    if count >= rows.shape[1]:  # Lloyd-Max's zero-error fixed point: every weight is a landmark
        return distinct_sorted_rows(sorted_rows)
    start = row_quantiles(sorted_rows, quantile_probabilities(count, rows.dtype, rows.device))
    return distinct_sorted_rows(lloyd_max(sorted_rows, start, iterations))


def normal_landmarks(rows: torch.Tensor, count: int) -> torch.Tensor:
    """Quantiles ``mu + sigma * Phi^-1((i + 0.5) / count)`` of a normal prior fitted to each row (mean and
    population standard deviation), deduplicated (C, K <= count). ``Phi^-1(p) = sqrt(2) erfinv(2p - 1)``
    is computed in float64: in float32, ``2p - 1`` keeps too few digits near +-1 for 16-bit tails."""
    std, mean = torch.std_mean(rows.double(), dim=1, correction=0)
    z = math.sqrt(2) * torch.erfinv(2 * quantile_probabilities(count, torch.float64, rows.device) - 1)
    return distinct_sorted_rows(mean.to(rows.dtype)[:, None] + std.to(rows.dtype)[:, None] * z.to(rows.dtype))


def _neighbours(rows: torch.Tensor, landmarks: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Indices and values of the landmarks just below-or-at and just above each value; values outside a
    row's landmark range get the end landmark as both neighbours (so they clip to it)."""
    last = landmarks.shape[1] - 1
    at_or_below = torch.searchsorted(landmarks.contiguous(), rows.contiguous(), right=True)
    low, up = (at_or_below - 1).clamp(0, last), at_or_below.clamp(0, last)
    return low, up, landmarks.gather(1, low), landmarks.gather(1, up)


def round_nearest(rows: torch.Tensor, landmarks: torch.Tensor) -> torch.Tensor:
    """Codes (C, N) of the nearest landmark of each value (ties go to the lower landmark)."""
    low, up, low_value, up_value = _neighbours(rows, landmarks)
    return torch.where(rows - low_value <= up_value - rows, low, up)


def round_stochastic(rows: torch.Tensor, landmarks: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Codes (C, N) of unbiased stochastic rounding (Gupta et al., 2015): a value between landmarks ``a < b``
    goes up with probability ``(w - a) / (b - a)``, so ``E[w_q] = w`` inside the landmark range.

    Uniform draws come from the CPU ``generator`` whatever the device, so a seed gives the same codes everywhere.
    """
    low, up, low_value, up_value = _neighbours(rows, landmarks)
    gap = up_value - low_value
    p_up = torch.where(gap > 0, (rows - low_value) / torch.where(gap > 0, gap, torch.ones_like(gap)), 0.0)
    draws = torch.rand(rows.shape, generator=generator, dtype=rows.dtype).to(rows.device)
    return torch.where(draws < p_up, up, low)
