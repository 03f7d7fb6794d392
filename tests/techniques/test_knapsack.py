"""The exact multiple-choice knapsack: known optima, refusals, and agreement with brute force."""

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wattless.techniques._knapsack import solve_multiple_choice_knapsack

# Two layers of 10 and 100 weights at 2, 4 or 8 bits; the small one is far more sensitive.
SIZES, BITS = [10, 100], [2, 4, 8]
COSTS = [[n * b for b in BITS] for n in SIZES]
VALUES = [[5.0, 1.0, 0.0], [0.3, 0.1, 0.0]]


@pytest.mark.parametrize("budget, expected", [
    (330, [2, 0]),  # average 3 bits: 8 bits for the sensitive layer, 2 for the big one (280 bits)
    (280, [2, 0]),  # exactly on budget
    (279, [1, 0]),
    (220, [0, 0]),  # only the cheapest fits
    (10**6, [2, 2]),
])
def test_knapsack_known_optimum(budget, expected):
    assert solve_multiple_choice_knapsack(COSTS, VALUES, budget) == expected


def test_knapsack_refuses_an_impossible_budget_and_nan():
    with pytest.raises(ValueError, match="over the budget"):
        solve_multiple_choice_knapsack(COSTS, VALUES, 219)
    with pytest.raises(ValueError, match="NaN"):
        solve_multiple_choice_knapsack(COSTS, [[float("nan"), 1, 0], [0, 0, 0]], 10**6)
    assert solve_multiple_choice_knapsack([], [], 0) == []


instances = st.integers(1, 4).flatmap(lambda groups: st.integers(1, 4).flatmap(lambda options: st.tuples(
    st.lists(st.lists(st.integers(0, 40), min_size=options, max_size=options), min_size=groups, max_size=groups),
    st.lists(st.lists(st.floats(-1, 10), min_size=options, max_size=options), min_size=groups, max_size=groups),
    st.integers(0, 160))))


def brute_force(costs, values, budget):
    """The least total value over every combination within budget (None when nothing fits)."""
    picks = itertools.product(*(range(len(row)) for row in costs))
    totals = [sum(row[j] for row, j in zip(values, pick, strict=True)) for pick in picks
              if sum(row[j] for row, j in zip(costs, pick, strict=True)) <= budget]
    return min(totals, default=None)


@settings(max_examples=200, deadline=None)
@given(instances)
def test_knapsack_is_exact_against_brute_force(instance):
    costs, values, budget = instance
    optimum = brute_force(costs, values, budget)
    if optimum is None:
        with pytest.raises(ValueError):
            solve_multiple_choice_knapsack(costs, values, budget)
        return
    pick = solve_multiple_choice_knapsack(costs, values, budget)
    assert sum(c[j] for c, j in zip(costs, pick, strict=True)) <= budget
    assert sum(v[j] for v, j in zip(values, pick, strict=True)) == pytest.approx(optimum, abs=1e-9)
    coarse = solve_multiple_choice_knapsack(costs, values, budget, max_states=3)  # rounded units: still fits
    assert sum(c[j] for c, j in zip(costs, coarse, strict=True)) <= budget
