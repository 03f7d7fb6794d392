"""Grid and rounding helpers of PTQ: properties over random weights, and the definitions checked by hand."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.stats import norm

from wattless.techniques.quantize._grids import (
    distinct_sorted_rows,
    histogram_landmarks,
    lloyd_max,
    midrise,
    normal_landmarks,
    quantile_probabilities,
    round_nearest,
    round_stochastic,
    row_quantiles,
    uniform_landmarks,
    value_range,
)

# rows (C, N) of weights, with ties (a coarse grid of values) and zero-range rows possible
weight_rows = st.tuples(st.integers(1, 4), st.integers(1, 40)).flatmap(
    lambda shape: arrays(np.float32, shape, elements=st.sampled_from([-2.0, -0.5, 0.0, 0.25, 1.0]) | st.floats(
        -3, 3, width=32))).map(torch.from_numpy)


def landmark_set(rows, kind, bits, symmetric=True):
    if kind == "uniform":
        return uniform_landmarks(*value_range(rows, symmetric), bits)
    if kind == "histogram":
        return histogram_landmarks(rows, 2**bits)
    return normal_landmarks(rows, 2**bits)


@settings(max_examples=60, deadline=None)
@given(rows=weight_rows, bits=st.integers(1, 5), kind=st.sampled_from(["uniform", "histogram", "normal"]),
       symmetric=st.booleans())
def test_nearest_picks_a_closest_landmark_and_is_idempotent(rows, bits, kind, symmetric):
    landmarks = landmark_set(rows, kind, bits, symmetric)
    assert landmarks.shape[1] <= 2**bits and bool((landmarks.diff(dim=1) >= 0).all())
    codes = round_nearest(rows, landmarks)
    rounded = landmarks.gather(1, codes)
    closest = (rows[:, :, None] - landmarks[:, None, :]).abs().amin(dim=2)
    assert torch.equal((rows - rounded).abs(), closest)
    assert torch.equal(landmarks.gather(1, round_nearest(rounded, landmarks)), rounded)


@settings(max_examples=60, deadline=None)
@given(rows=weight_rows, bits=st.integers(1, 5), kind=st.sampled_from(["uniform", "histogram", "normal"]),
       seed=st.integers(0, 2**31))
def test_stochastic_rounds_to_a_neighbouring_landmark(rows, bits, kind, seed):
    landmarks = landmark_set(rows, kind, bits)
    codes = round_stochastic(rows, landmarks, torch.Generator().manual_seed(seed))
    rounded = landmarks.gather(1, codes)
    first, last = landmarks[:, :1], landmarks[:, -1:]
    below = torch.where(landmarks[:, None, :] <= rows[:, :, None], landmarks[:, None, :], -torch.inf).amax(2)
    above = torch.where(landmarks[:, None, :] >= rows[:, :, None], landmarks[:, None, :], torch.inf).amin(2)
    inside = (rows >= first) & (rows <= last)
    assert bool(((rounded == below) | (rounded == above))[inside].all())
    assert bool((rounded == first.expand_as(rows))[rows < first].all())  # outside the range: clip to the end
    assert bool((rounded == last.expand_as(rows))[rows > last].all())
    assert torch.equal(codes, round_stochastic(rows, landmarks, torch.Generator().manual_seed(seed)))


@settings(max_examples=25, deadline=None)
@given(values=arrays(np.float32, 8, elements=st.floats(-1, 1, width=32)).map(torch.from_numpy),
       kind=st.sampled_from(["uniform", "normal"]))
def test_stochastic_rounding_is_unbiased(values, kind):
    draws = 4000
    landmarks = landmark_set(torch.linspace(-1, 1, 64)[None, :], kind, 3)
    inside = values.clamp(float(landmarks[0, 0]), float(landmarks[0, -1]))
    rows = inside.repeat(draws)[None, :]
    rounded = landmarks.gather(1, round_stochastic(rows, landmarks, torch.Generator().manual_seed(0)))
    mean = rounded.reshape(draws, -1).double().mean(dim=0)
    widest_gap = float(landmarks.diff().max())
    # a two-point draw has standard deviation <= gap / 2; allow 5 standard errors
    assert torch.allclose(mean, inside.double(), atol=5 * widest_gap / 2 / draws**0.5)


def test_stochastic_seed_decides_the_codes():
    rows = torch.randn(3, 500, generator=torch.Generator().manual_seed(1))
    landmarks = landmark_set(rows, "uniform", 2)
    first = round_stochastic(rows, landmarks, torch.Generator().manual_seed(5))
    assert torch.equal(first, round_stochastic(rows, landmarks, torch.Generator().manual_seed(5)))
    assert not torch.equal(first, round_stochastic(rows, landmarks, torch.Generator().manual_seed(6)))


def test_midrise_matches_its_definition_by_hand():
    w = torch.tensor([[-1.0, -0.6, -0.1, 0.0, 0.3, 0.99, 1.0]])
    lo, hi = value_range(w, symmetric=True)
    codes, width, offset = midrise(w, lo, hi, bits=2)  # D = 2 / 4 = 0.5: bin centres -0.75, -0.25, 0.25, 0.75
    assert codes.tolist() == [[0, 0, 1, 2, 2, 3, 3]]
    assert float(width) == 0.5 and float(offset) == -0.75
    decoded = codes * width + offset
    assert decoded.tolist() == [[-0.75, -0.75, -0.25, 0.25, 0.25, 0.75, 0.75]]
    issue_form = (0.5 * (torch.floor(w / 0.5) + 0.5)).clamp(-0.75, 0.75)  # D (floor(w / D) + 1/2), clipped
    assert torch.equal(decoded, issue_form)


@settings(max_examples=60, deadline=None)
@given(rows=weight_rows, bits=st.integers(1, 8), symmetric=st.booleans())
def test_midrise_stays_within_half_a_bin_and_is_idempotent(rows, bits, symmetric):
    lo, hi = value_range(rows, symmetric)
    codes, width, offset = midrise(rows, lo, hi, bits)
    assert 0 <= int(codes.min()) and int(codes.max()) < 2**bits
    decoded = codes * width[:, None] + offset[:, None]
    assert bool(((rows - decoded).abs() <= width[:, None] / 2 * (1 + 1e-5) + 1e-6).all())
    again, _, _ = midrise(decoded, lo, hi, bits)
    assert torch.equal(again, codes)


@settings(max_examples=40, deadline=None)
@given(rows=weight_rows, bits=st.integers(1, 10), symmetric=st.booleans())
def test_uniform_landmarks_span_the_range_evenly(rows, bits, symmetric):
    lo, hi = value_range(rows, symmetric)
    landmarks = uniform_landmarks(lo, hi, bits)
    assert landmarks.shape == (rows.shape[0], 2**bits)
    assert torch.equal(landmarks[:, 0], lo)
    assert torch.allclose(landmarks[:, -1], hi, rtol=1e-5, atol=1e-6)
    steps = landmarks.diff(dim=1)
    assert torch.allclose(steps, steps[:, :1].expand_as(steps), rtol=1e-3, atol=1e-5)


def test_zero_range_rows_give_their_constant():
    rows = torch.full((2, 5), 0.37)
    codes, width, offset = midrise(rows, *value_range(rows, False), 4)
    assert torch.equal(codes * width[:, None] + offset[:, None], rows)
    for kind in ("uniform", "histogram", "normal"):
        landmarks = landmark_set(rows, kind, 3, symmetric=False)
        assert torch.equal(landmarks.gather(1, round_nearest(rows, landmarks)), rows)
        stochastic = round_stochastic(rows, landmarks, torch.Generator().manual_seed(0))
        assert torch.equal(landmarks.gather(1, stochastic), rows)


def test_histogram_landmarks_crowd_where_weights_are_dense():
    laplace = torch.distributions.Laplace(0.0, 1.0)
    torch.manual_seed(0)
    rows = laplace.sample((1, 20000))
    lo, hi = float(rows.min()), float(rows.max())
    quarter = (hi - lo) / 4
    for iterations in (0, 20):  # pure quantiles, and after Lloyd-Max
        landmarks = histogram_landmarks(rows, 16, iterations)[0]
        central = ((landmarks > lo + quarter) & (landmarks < hi - quarter)).sum()
        assert central > len(landmarks) / 2


def test_lloyd_max_lowers_the_squared_error():
    rows = torch.distributions.Laplace(0.0, 1.0).sample((3, 2000)).sort(dim=1).values
    start = row_quantiles(rows, quantile_probabilities(8))
    refined = lloyd_max(rows, start)

    def squared_error(landmarks):
        return float(((rows - landmarks.gather(1, round_nearest(rows, landmarks))) ** 2).sum())

    assert squared_error(refined) < 0.9 * squared_error(start)


def test_histogram_of_few_weights_uses_the_weights():
    rows = torch.tensor([[0.5, -1.0, 0.5, 2.0], [3.0, 3.0, 3.0, 3.0]])
    assert histogram_landmarks(rows, 4).tolist() == [[-1.0, 0.5, 2.0], [3.0, 3.0, 3.0]]


def test_normal_landmarks_are_normal_quantiles():
    rows = torch.randn(3, 300, generator=torch.Generator().manual_seed(2)) * 0.1 + 0.02
    values = rows.double().numpy()
    for bits in (1, 3, 12):
        probs = (np.arange(2**bits) + 0.5) / 2**bits
        expected = values.mean(axis=1, keepdims=True) + values.std(axis=1, keepdims=True) * norm.ppf(probs)
        np.testing.assert_allclose(normal_landmarks(rows, 2**bits).numpy(), expected, rtol=1e-5, atol=1e-6)


@settings(max_examples=60, deadline=None)
@given(rows=weight_rows, count=st.integers(1, 70))
def test_row_quantiles_match_numpy(rows, count):
    probs = quantile_probabilities(count)
    expected = np.quantile(rows.numpy().astype(np.float64), probs.double().numpy(), axis=1).T
    result = row_quantiles(rows.sort(dim=1).values, probs)
    np.testing.assert_allclose(result.numpy(), expected, rtol=1e-5, atol=1e-5)


@settings(max_examples=60, deadline=None)
@given(rows=weight_rows)
def test_distinct_rows_keep_each_value_once_then_pad(rows):
    distinct = distinct_sorted_rows(rows.sort(dim=1).values)
    for row, out in zip(rows, distinct, strict=True):
        unique = torch.unique(row)
        assert torch.equal(out[: len(unique)], unique)
        assert bool((out[len(unique):] == unique[-1]).all())
    assert distinct.shape[1] == max(len(torch.unique(row)) for row in rows)


@pytest.mark.parametrize("kind", ["histogram", "normal"])
def test_sixteen_bit_landmark_sets_are_quick_and_sorted(kind):
    rows = torch.randn(300, 784, generator=torch.Generator().manual_seed(0))
    landmarks = landmark_set(rows, kind, 16)
    assert bool((landmarks.diff(dim=1) >= 0).all())
    error = (landmarks.gather(1, round_nearest(rows, landmarks)) - rows).abs()
    inside = (rows >= landmarks[:, :1]) & (rows <= landmarks[:, -1:])
    assert bool((error <= landmarks.diff(dim=1).amax(dim=1, keepdim=True) / 2)[inside].all())
