"""Mixed precision: per-layer bit widths under a budget, from measured sensitivity, solved as a knapsack.

Sensitivity of layer ``l`` at ``b`` bits is the increase of the validation loss (cross-entropy or MSE)
when only layer ``l`` is quantized to ``b`` bits by ``quantize.ptq`` and every other layer stays in float
(or, with ``sensitivity="output"``, the mean squared change of the model outputs). The bit widths then
minimise the summed sensitivities (the usual additive approximation: layer errors are assumed to add up
independently) subject to ``sum_l params_l * bits_l <= budget``, a multiple-choice knapsack solved
exactly by dynamic programming.

With ``unit="channel"`` the allocation unit is an output channel (row) of every layer instead of a whole
layer: the sensitivity of row ``c`` at ``b`` bits is the same damage with only that row quantized (measured
for every row by :mod:`._rows`, exactly and without a forward pass per row where the model allows), the
knapsack items are all rows with costs ``row size * bits``, and the result is ``quantize.ptq`` with
``channel_bits`` (one :class:`~wattless.packed.RowAffineWeight` per layer). Only the uniform
per-channel grid (``method`` nearest or midrise, ``landmarks=uniform``, ``granularity=channel``) has rows
of their own width.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field, field_validator, model_validator
from torch import nn

from ...data import Dataset
from ...errors import ConfigError, DataError
from .._knapsack import MAX_DP_STATES, solve_multiple_choice_knapsack
from .._registry import Context, TechniqueConfig, get_technique, make_config, register_technique
from .._sensitivity import Approximate, Sensitivity, damage_table
from ._layers import MAX_BITS, MIN_BITS, QUANTIZABLE_LAYERS, quantizable_layers
from ._rows import damage_function, row_damage
from .ptq import quantize_weight

MAX_DP_TABLE = 1 << 28
"""Cells of the solver's choice table (groups x budget cells, one byte each); with many groups (``unit=channel``)
the budget cells are limited to this over the number of groups."""


class MixedPrecisionConfig(TechniqueConfig):
    budget_bits: float | None = Field(4.0, gt=0, le=MAX_BITS, description="average bits per weight, "
                                      "weighted by parameter count (left out when budget_bytes is given)")
    budget_bytes: int | None = Field(None, gt=0, description="total bytes of the bit-packed weight codes")
    choices: list[int] = Field(default_factory=lambda: [2, 3, 4, 6, 8], description="bit widths a layer may get")
    method: Literal["midrise", "nearest", "stochastic"] = "nearest"
    landmarks: Literal["uniform", "histogram", "normal"] = "uniform"
    granularity: Literal["tensor", "channel"] = "channel"
    sensitivity: Sensitivity = Field("loss", description="damage measured per layer (or row) and bit width: "
                                     "validation-loss increase, or mean squared change of the outputs "
                                     "(the default with unit=channel)")
    samples: int = Field(1024, ge=1, description="validation rows used to measure sensitivity")
    unit: Literal["layer", "channel"] = Field("layer", description="what gets a bit width: each layer, or each "
                                              "output channel (row) of every layer (uniform per-channel grid only)")

    @model_validator(mode="before")
    @classmethod
    def _bytes_replace_default_bits(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("budget_bytes") is not None and "budget_bits" not in data:
            return {**data, "budget_bits": None}
        return data

    @model_validator(mode="before")
    @classmethod
    def _rows_default_to_output_sensitivity(cls, data: Any) -> Any:
        # per row, the loss increase is mostly its first-order term (gradient times change), whose sign is
        # chance: the knapsack then gives 2 bits to rows where rounding happened to lower the validation loss,
        # and the summed estimate stops predicting the damage (LeNet-300 at 3 bits: 84% validation accuracy
        # with the loss, 90% with the output change)
        if isinstance(data, dict) and data.get("unit") == "channel" and "sensitivity" not in data:
            return {**data, "sensitivity": "output"}
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
        if self.unit == "channel" and (self.method == "stochastic" or self.granularity != "channel"
                                       or (self.method == "nearest" and self.landmarks != "uniform")):
            raise ValueError("unit=channel needs the uniform per-channel grid: method=nearest (landmarks=uniform) or "
                             f"method=midrise, and granularity=channel, not method={self.method},landmarks="
                             f"{self.landmarks},granularity={self.granularity}; change those, or use unit=layer")
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


@dataclass(frozen=True)
class ChannelAllocation:
    """One bit width per output channel (row) of every layer, chosen from a measured table per layer."""

    layers: list[str]
    row_sizes: list[int]
    """Weights per row of each layer."""
    options: list[int]
    sensitivity: dict[str, np.ndarray]
    """Per layer, (rows, options): damage with only that row quantized with that option (:mod:`._rows`)."""
    chosen: dict[str, list[int]]

    def code_bits(self, choice: dict[str, list[int]] | None = None) -> int:
        """Bits of all weight codes: the sum over rows of row size times row bits."""
        choice = choice or self.chosen
        return sum(size * sum(choice[name]) for name, size in zip(self.layers, self.row_sizes, strict=True))

    def mean(self, choice: dict[str, list[int]] | None = None) -> float:
        """Average bits per weight."""
        sizes = zip(self.layers, self.row_sizes, strict=True)
        return self.code_bits(choice) / sum(len(self.sensitivity[name]) * size for name, size in sizes)

    def estimated_damage(self, choice: dict[str, list[int]] | None = None) -> float:
        """Sum of the per-row sensitivities of ``choice`` (the additive estimate that was minimised)."""
        choice = choice or self.chosen
        return float(sum(self.sensitivity[name][c, self.options.index(b)]
                         for name in self.layers for c, b in enumerate(choice[name])))


def validation_rows(data: Dataset, samples: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``samples`` validation rows, on which sensitivity is measured."""
    if len(data.X_val) == 0:
        raise DataError(f"data set {data.name!r} has no validation rows to measure layer sensitivity on; "
                        "load it with a validation split")
    return data.X_val[:samples], data.y_val[:samples]


def sensitivity_table(model: nn.Module, layers: list[str], options: list[int], approximate: Approximate,
                      data: Dataset, samples: int, measure: Sensitivity = "loss") -> np.ndarray:
    """(layers, options) damage on the first ``samples`` validation rows when only that layer is approximated
    (others in float): :func:`~wattless.techniques._sensitivity.damage_table` on those rows."""
    X, y = validation_rows(data, samples)
    return damage_table(model, layers, options, approximate, X, y, data.task, measure)


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
        return ptq.apply(trial, make_config("quantize.ptq", fields), ctx).module

    costs, budget = _code_costs(sizes, cfg.choices, cfg)
    table = sensitivity_table(model, names, cfg.choices, quantize_only, ctx.dataset, cfg.samples, cfg.sensitivity)
    picks = solve_multiple_choice_knapsack(costs, table, budget)
    return Allocation(names, sizes, cfg.choices, table, {n: cfg.choices[j] for n, j in zip(names, picks, strict=True)})


def _row_code_costs(row_sizes: list[int], rows: list[int], choices: list[int],
                    cfg: MixedPrecisionConfig) -> tuple[list[list[int]], int]:
    """Costs of every row and the budget, in bits. A byte budget loses 7 bits per stored code part (each
    layer's rows of one width are packed together and padded to whole bytes), so the bytes always fit."""
    costs = [[size * b for b in choices] for size, count in zip(row_sizes, rows, strict=True) for _ in range(count)]
    if cfg.budget_bits is not None:
        weights = sum(size * count for size, count in zip(row_sizes, rows, strict=True))
        return costs, math.floor(Fraction(repr(cfg.budget_bits)) * weights)
    budget = 8 * cfg.budget_bytes - 7 * sum(min(count, len(choices)) for count in rows)
    needed = sum(row[0] for row in costs)
    if needed > budget:
        raise ConfigError(f"budget_bytes={cfg.budget_bytes} is below the smallest choice ({choices[0]} bits) for "
                          f"every row, which needs {-(-needed // 8)} bytes plus padding; raise the budget or add a "
                          "smaller choice")
    return costs, budget


def plan_channel_bit_widths(model: nn.Module, cfg: MixedPrecisionConfig, ctx: Context) -> ChannelAllocation:
    """Measure the rows x bits sensitivity of every layer and choose the bits of each row within the budget."""
    layers = quantizable_layers(model)
    names = [name for name, _ in layers]
    rows = [module.weight.shape[0] for _, module in layers]
    row_sizes = [module.weight[0].numel() for _, module in layers]
    costs, budget = _row_code_costs(row_sizes, rows, cfg.choices, cfg)
    X, y = validation_rows(ctx.dataset, cfg.samples)
    grid = make_config("quantize.ptq", {"method": cfg.method, "landmarks": cfg.landmarks, "granularity": "channel"})
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            X = torch.as_tensor(X)
            labels = torch.as_tensor(y, dtype=torch.long if ctx.dataset.task == "classification" else None)
            reference = model(X)
            damage = damage_function(reference, labels, ctx.dataset.task, cfg.sensitivity)
            tables = {}
            for name, module in layers:
                quantized = [quantize_weight(module.weight, b, grid, torch.Generator()).decode() for b in cfg.choices]
                table = row_damage(model, name, quantized, X, damage, reference)
                tables[name] = np.where(np.isfinite(table), table, math.inf)
    finally:
        model.train(was_training)
    values = np.concatenate([tables[name] for name in names])
    picks = solve_multiple_choice_knapsack(costs, values, budget, max_states=min(MAX_DP_STATES,
                                                                                 MAX_DP_TABLE // len(costs)))
    chosen, start = {}, 0
    for name, count in zip(names, rows, strict=True):
        chosen[name] = [cfg.choices[j] for j in picks[start:start + count]]
        start += count
    return ChannelAllocation(names, row_sizes, cfg.choices, tables, chosen)


@register_technique("quantize.mixed", MixedPrecisionConfig, applies_to=QUANTIZABLE_LAYERS,
                    claims=("weight_bits", "size_bytes"))
def quantize_mixed(model: nn.Module, cfg: MixedPrecisionConfig, ctx: Context) -> nn.Module:
    """Per-layer (or per-channel) bit widths within a budget, chosen by knapsack from measured sensitivity, then PTQ."""
    fields = {"bits": cfg.choices[-1], "method": cfg.method, "landmarks": cfg.landmarks,
              "granularity": cfg.granularity}
    if cfg.unit == "channel":
        fields["channel_bits"] = plan_channel_bit_widths(model, cfg, ctx).chosen
    else:
        fields["layer_bits"] = plan_bit_widths(model, cfg, ctx).chosen
    return get_technique("quantize.ptq").apply(model, make_config("quantize.ptq", fields), ctx).module
