"""Mixed precision: per-layer bit widths under a budget, from measured sensitivity, solved as a knapsack.

Sensitivity of layer ``l`` at ``b`` bits is the increase of the validation loss (cross-entropy or MSE)
when only layer ``l`` is quantized to ``b`` bits by ``quantize.ptq`` and every other layer stays in float
(or, with ``sensitivity="output"``, the mean squared change of the model outputs). The bit widths then
minimise the summed sensitivities (the usual additive approximation: layer errors are assumed to add up
independently) subject to ``sum_l params_l * bits_l <= budget``, a multiple-choice knapsack solved
exactly by dynamic programming.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator
from torch import nn

from ...data import Dataset
from ...errors import ConfigError, DataError, ModelError
from ...train import metrics_from_outputs, predict
from .._registry import Context, TechniqueConfig, get_technique, make_config, register_technique
from ._layers import MAX_BITS, MIN_BITS, quantizable_layers

Sensitivity = Literal["loss", "output"]
"""What :func:`sensitivity_table` measures: validation-loss increase, or mean squared change of the outputs."""

MAX_DP_STATES = 1 << 20
"""Budget cells of the knapsack table; past this the budget unit is coarsened (see the solver)."""


class MixedPrecisionConfig(TechniqueConfig):
    budget_bits: float | None = Field(4.0, gt=0, le=MAX_BITS, description="average bits per weight, "
                                      "weighted by parameter count (left out when budget_bytes is given)")
    budget_bytes: int | None = Field(None, gt=0, description="total bytes of the bit-packed weight codes")
    choices: list[int] = Field(default_factory=lambda: [2, 3, 4, 6, 8], description="bit widths a layer may get")
    method: Literal["midrise", "nearest", "stochastic"] = "nearest"
    landmarks: Literal["uniform", "histogram", "normal"] = "uniform"
    granularity: Literal["tensor", "channel"] = "channel"
    sensitivity: Sensitivity = Field("loss", description="damage measured per layer and bit width: "
                                     "validation-loss increase, or mean squared change of the outputs")
    samples: int = Field(1024, ge=1, description="validation rows used to measure sensitivity")

    @model_validator(mode="before")
    @classmethod
    def _bytes_replace_default_bits(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("budget_bytes") is not None and "budget_bits" not in data:
            return {**data, "budget_bits": None}
        return data

    @field_validator("choices")
    @classmethod
    def _valid_choices(cls, choices: list[int]) -> list[int]:
        if not choices or any(not MIN_BITS <= b <= MAX_BITS for b in choices):
            raise ValueError(f"choices must be bit widths from {MIN_BITS} to {MAX_BITS}, got {choices}")
        return sorted(set(choices))

    @model_validator(mode="after")
    def _one_budget(self) -> MixedPrecisionConfig:
        if (self.budget_bits is None) == (self.budget_bytes is None):
            raise ValueError("give exactly one of budget_bits (average bits per weight) or budget_bytes")
        if self.budget_bits is not None and self.budget_bits < self.choices[0]:
            raise ValueError(f"budget_bits={self.budget_bits} is below the smallest choice ({self.choices[0]} bits); "
                             "raise the budget or add a smaller choice")
        return self


@dataclass(frozen=True)
class Allocation:
    """One option per layer (bits, or points for multipoint) chosen from a measured sensitivity table."""

    layers: list[str]
    sizes: list[int]
    """Weights per layer."""
    options: list[int]
    sensitivity: np.ndarray
    """(layers, options): damage with only that layer approximated with that option (:func:`sensitivity_table`)."""
    chosen: dict[str, int]

    def mean(self, choice: dict[str, int] | None = None) -> float:
        """Option per weight, weighted by layer size (average bits or points per weight)."""
        choice = choice or self.chosen
        return sum(n * choice[name] for name, n in zip(self.layers, self.sizes, strict=True)) / sum(self.sizes)

    def estimated_damage(self, choice: dict[str, int] | None = None) -> float:
        """Sum of the per-layer sensitivities of ``choice`` (the additive estimate that was minimised)."""
        choice = choice or self.chosen
        return float(sum(self.sensitivity[i, self.options.index(choice[name])] for i, name in enumerate(self.layers)))


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


def validation_rows(data: Dataset, samples: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``samples`` validation rows, on which sensitivity is measured."""
    if len(data.X_val) == 0:
        raise DataError(f"data set {data.name!r} has no validation rows to measure layer sensitivity on; "
                        "load it with a validation split")
    return data.X_val[:samples], data.y_val[:samples]


Approximate = Callable[[nn.Module, str, int], nn.Module]
"""``approximate(model_copy, layer, option)``: the copy with only ``layer`` approximated with ``option``."""


def sensitivity_table(model: nn.Module, layers: list[str], options: list[int], approximate: Approximate,
                      data: Dataset, samples: int, measure: Sensitivity = "loss") -> np.ndarray:
    """(layers, options) damage on validation rows when only that layer is approximated (others in float).

    ``loss``: increase of the validation loss (cross-entropy or MSE; can be negative by chance).
    ``output``: mean squared change of the model outputs (logits or predictions) from the float model's,
    never negative and far less noisy. An option the layer refuses (``ModelError``, e.g. more landmarks
    than distinct weights) or a non-finite result counts as infinite damage, picked only when forced.
    """
    X, y = validation_rows(data, samples)
    reference = predict(model, X)
    base = metrics_from_outputs(reference, y, data.task)["loss"]
    table = np.empty((len(layers), len(options)))
    for i, layer in enumerate(layers):
        for j, option in enumerate(options):
            try:
                outputs = predict(approximate(copy.deepcopy(model), layer, option), X)
            except ModelError:
                table[i, j] = math.inf
                continue
            damage = (metrics_from_outputs(outputs, y, data.task)["loss"] - base if measure == "loss"
                      else float(np.mean((outputs - reference) ** 2)))
            table[i, j] = damage if math.isfinite(damage) else math.inf
    return table


def _code_costs(sizes: list[int], choices: list[int], cfg: MixedPrecisionConfig) -> tuple[list[list[int]], int]:
    """Costs and budget in bits (average budget) or bytes (each tensor's codes padded to whole bytes)."""
    if cfg.budget_bits is not None:
        # the decimal the user wrote (3.3, not 3.2999...), so an exactly-on-budget choice is not refused
        return [[n * b for b in choices] for n in sizes], math.floor(Fraction(repr(cfg.budget_bits)) * sum(sizes))
    costs = [[-(-n * b // 8) for b in choices] for n in sizes]
    needed = sum(row[0] for row in costs)
    if needed > cfg.budget_bytes:
        raise ConfigError(f"budget_bytes={cfg.budget_bytes} is below the smallest choice ({choices[0]} bits) for "
                          f"every layer, which needs {needed} bytes; raise the budget or add a smaller choice")
    return costs, cfg.budget_bytes


def plan_bit_widths(model: nn.Module, cfg: MixedPrecisionConfig, ctx: Context) -> Allocation:
    """Measure the layers x bits sensitivity table and choose the bits per layer within the budget."""
    ptq = get_technique("quantize.ptq")
    layers = quantizable_layers(model)
    names = [name for name, _ in layers]
    sizes = [module.weight.numel() for _, module in layers]

    def quantize_only(trial: nn.Module, layer: str, bits: int) -> nn.Module:
        fields = {"bits": bits, "method": cfg.method, "landmarks": cfg.landmarks, "granularity": cfg.granularity,
                  "skip": [name for name in names if name != layer]}
        return ptq.apply(trial, make_config("quantize.ptq", fields), ctx)

    costs, budget = _code_costs(sizes, cfg.choices, cfg)
    table = sensitivity_table(model, names, cfg.choices, quantize_only, ctx.dataset, cfg.samples, cfg.sensitivity)
    picks = solve_multiple_choice_knapsack(costs, table, budget)
    return Allocation(names, sizes, cfg.choices, table, {n: cfg.choices[j] for n, j in zip(names, picks, strict=True)})


@register_technique("quantize.mixed", MixedPrecisionConfig)
def quantize_mixed(model: nn.Module, cfg: MixedPrecisionConfig, ctx: Context) -> nn.Module:
    """Per-layer bit widths within a budget, chosen by knapsack from measured sensitivity, then PTQ."""
    plan = plan_bit_widths(model, cfg, ctx)
    fields = {"bits": cfg.choices[-1], "method": cfg.method, "landmarks": cfg.landmarks,
              "granularity": cfg.granularity, "layer_bits": plan.chosen}
    return get_technique("quantize.ptq").apply(model, make_config("quantize.ptq", fields), ctx)
