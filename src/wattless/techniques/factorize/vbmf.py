"""Rank estimation by empirical variational Bayesian matrix factorization (EVBMF; Nakajima et al., "Global
analytic solution of fully-observed variational Bayesian matrix factorization", JMLR 2013), as Kim et al.
(ICLR 2016) use it to pick Tucker ranks: the noise variance is estimated by minimizing the free energy,
and the rank is the number of singular values above the analytic threshold it implies."""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import minimize_scalar

_TAU_BAR_PER_SQRT_ALPHA = 2.5129
"""The constant of the threshold tau_bar = 2.5129 sqrt(alpha) (Nakajima et al., 2013, Section 4)."""


def _free_energy(sigma2: float, singular: np.ndarray, rows: int, cols: int, x_bar: float) -> float:
    """The EVBMF free energy (up to constants) as a function of the noise variance ``sigma2``."""
    alpha = rows / cols
    x = singular**2 / (cols * sigma2)
    above, below = x[x > x_bar], x[x <= x_bar]
    tau = 0.5 * (above - (1 + alpha) + np.sqrt((above - (1 + alpha)) ** 2 - 4 * alpha))
    return float(np.sum(below - np.log(below + np.finfo(float).eps)) + np.sum(above - tau)
                 + np.sum(np.log((tau + 1) / above)) + alpha * np.sum(np.log(tau / alpha + 1)))


def vbmf_rank(matrix: np.ndarray) -> int:
    """The rank EVBMF keeps for ``matrix`` (0 for a matrix it takes for pure noise)."""
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.shape[0] > matrix.shape[1]:
        matrix = matrix.T
    rows, cols = matrix.shape
    singular = np.linalg.svd(matrix, compute_uv=False)
    if not singular.any():
        return 0
    alpha = rows / cols
    tau_bar = _TAU_BAR_PER_SQRT_ALPHA * math.sqrt(alpha)
    x_bar = (1 + tau_bar) * (1 + alpha / tau_bar)
    # Bounds of the noise variance (Nakajima et al., 2013, Theorem 8 and below).
    first_noise = math.ceil(rows / (1 + alpha)) - 1
    upper = float(np.sum(singular**2)) / (rows * cols)
    lower = max(singular[first_noise] ** 2 / (cols * x_bar), float(np.mean(singular[first_noise:] ** 2)) / cols)
    if lower >= upper:
        sigma2 = upper
    else:
        sigma2 = minimize_scalar(_free_energy, bounds=(lower, upper), method="bounded",
                                 args=(singular, rows, cols, x_bar)).x
    return int(np.sum(singular > math.sqrt(cols * sigma2 * x_bar)))
