"""EVBMF rank estimation: the true rank of a low-rank matrix under noise, either orientation."""

import numpy as np
import pytest

from wattless.techniques.factorize.vbmf import vbmf_rank


@pytest.mark.parametrize("rows, cols, rank, noise", [
    (50, 80, 5, 0.1), (80, 50, 7, 0.3), (16, 150, 4, 0.05), (6, 400, 3, 0.1), (30, 30, 10, 0.5),
])
def test_recovers_the_rank_of_a_noisy_low_rank_matrix(rows, cols, rank, noise):
    rng = np.random.default_rng(0)
    matrix = rng.normal(size=(rows, rank)) @ rng.normal(size=(rank, cols)) + noise * rng.normal(size=(rows, cols))
    assert vbmf_rank(matrix) == rank


def test_pure_noise_and_zeros_have_rank_zero():
    assert vbmf_rank(np.random.default_rng(0).normal(size=(20, 40))) == 0
    assert vbmf_rank(np.zeros((3, 4))) == 0
