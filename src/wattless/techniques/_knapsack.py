"""The exact multiple-choice knapsack that mixed precision, multi-point quantization and sensitivity-driven
pruning allocate with: one option per group, least summed value, summed integer cost within a budget."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

MAX_DP_STATES = 1 << 20
"""Budget cells of the knapsack table; past this the budget unit is coarsened (see the solver)."""


def solve_multiple_choice_knapsack(costs: Sequence[Sequence[int]], values: Sequence[Sequence[float]], budget: int,
                                   *, max_states: int = MAX_DP_STATES) -> list[int]:
    """Index of one option per group minimising ``sum values[g][j]`` with ``sum costs[g][j] <= budget``.

    Dynamic programme over the budget left once every group has its cheapest option, counted in
    units of the gcd of the extra costs, so the optimum is exact. Only when that takes more than
    ``max_states`` units are extra costs rounded up to a coarser unit: the result then still fits the
    budget, and is optimal for a budget at most one coarse unit per group tighter. Ties go to the lower index.

    Raises:
        ValueError: the cheapest options already exceed ``budget``, or a value is NaN.
    """
    if not len(costs):
        return []
    cost = np.asarray(costs, dtype=np.int64).reshape(len(costs), -1)
    value = np.asarray(values, dtype=np.float64).reshape(cost.shape)
    if (cost < 0).any() or np.isnan(value).any():
        raise ValueError("costs must be non-negative and values not NaN")
    extra = cost - cost.min(axis=1, keepdims=True)
    room = int(budget) - int(cost.min(axis=1).sum())
    if room < 0:
        raise ValueError(f"the cheapest options cost {budget - room}, over the budget of {budget}")
    room = min(room, int(extra.max(axis=1).sum()))
    unit = int(np.gcd.reduce(extra[extra > 0])) if (extra > 0).any() else 1
    if room // unit > max_states:
        unit = -(-room // max_states)
    weight = -(-extra // unit)
    cells = room // unit + 1
    best = np.zeros(cells)
    picks = np.zeros((len(cost), cells), dtype=np.min_scalar_type(cost.shape[1]))
    for g in range(len(cost)):
        new = np.full(cells, np.inf)
        for j in range(cost.shape[1]):
            w = int(weight[g, j])
            if w < cells:
                candidate = np.full(cells, np.inf)
                candidate[w:] = best[:cells - w] + value[g, j]
                better = candidate < new
                new[better], picks[g, better] = candidate[better], j
        best = new
    left, chosen = cells - 1, []
    for g in reversed(range(len(cost))):
        chosen.append(int(picks[g, left]))
        left -= int(weight[g, chosen[-1]])
    return chosen[::-1]
