"""Multi-point quantization (Liu et al., 2020, "Post-training quantization with multiple points"):
each weight tensor approximated as a sum of ``p`` low-precision tensors, ``w ~ sum_t s_t * g_t``.

Every ``g_t`` lies on the uniform grid ``G = {-1, -1+eps, ..., 1}`` (``2/eps`` steps, so
``ceil(log2(2/eps + 1))`` bits per point) and has its own float scale per layer. Greedy residual:
``r_0 = w``; at step ``t``, ``s_t = max|r_{t-1}|`` and ``g_t`` is the grid value nearest ``r_{t-1} / s_t``;
``r_t = r_{t-1} - s_t * g_t``. Since ``r_{t-1} / s_t`` lies in ``[-1, 1]``, ``|r_t| <= s_t * eps / 2``,
hence ``max|w - w_p| <= (eps/2)**p * max|w|``: each point shrinks the worst error by ``eps/2`` (not at
all for ``eps=2``, the grid ``{-1, 1}``).
A scale per point is what makes the later points useful: with one scale ``max|w|`` the first residual
already lies within half a grid step, so every later point would round to 0.

With ``allocation="importance"``, layer ``l`` (``n_l`` weights) gets ``p_l`` in ``1..max_points`` points
minimising the summed sensitivities (each layer approximated alone with every ``p``, all others in float;
by default the mean squared change of the model outputs on validation rows, as Liu et al. decide points
by output error; see :func:`wattless.techniques.quantize.mixed.sensitivity_table`) subject to
``sum_l n_l * p_l <= points * sum_l n_l``, solved exactly as a multiple-choice knapsack. So the average
number of points per weight is at most ``points``; as more points lower the output error, the budget is
then spent as far as the layer sizes allow.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field, field_validator, model_validator
from torch import nn
from torch.nn.utils import parametrize

from ...packed import PackedParts, PackedWeight, _checked_bits, _checked_parts, register_packed
from .._knapsack import solve_multiple_choice_knapsack
from .._registry import Context, TechniqueConfig, register_technique
from ._layers import MAX_BITS, QUANTIZABLE_LAYERS, quantizable_layers
from .mixed import Allocation, Sensitivity, sensitivity_table

SENSITIVITY_SAMPLES = 1024
"""Validation rows on which the importance allocation measures each layer's sensitivity."""


class MultipointConfig(TechniqueConfig):
    points: int = Field(2, ge=1, le=8, description="low-precision values summed per weight (average, with importance)")
    epsilon: float = Field(0.25, gt=0, le=2, description="grid step on [-1, 1]; 2/epsilon must be a whole number")
    allocation: Literal["uniform", "importance"] = "uniform"
    max_points: int = Field(4, ge=1, le=8, description="most points one layer may get (importance only)")
    sensitivity: Sensitivity = Field("output", description="damage measured per layer and point count "
                                     "(importance only): mean squared change of the outputs, or loss increase")
    skip: list[str] = Field(default_factory=list, description="layers left in float")

    @field_validator("epsilon")
    @classmethod
    def _divides_two(cls, epsilon: float) -> float:
        steps = round(2 / epsilon)
        if abs(2 / epsilon - steps) > 1e-6 * steps or steps >= 2**MAX_BITS:
            raise ValueError(f"epsilon={epsilon} must split [-1, 1] into a whole number of steps (2/epsilon "
                             f"from 1 to {2**MAX_BITS - 1}), e.g. 1, 0.5, 0.25 or 2/15 for 4 bits")
        return epsilon

    @model_validator(mode="after")
    def _room_for_points(self) -> MultipointConfig:
        if self.allocation == "importance" and self.max_points < self.points:
            raise ValueError(f"max_points={self.max_points} is below points={self.points}; raise max_points")
        return self

    @property
    def steps(self) -> int:
        """Grid steps across [-1, 1] (``2 / epsilon``)."""
        return round(2 / self.epsilon)


def grid_bits(steps: int) -> int:
    """Bits of one grid index in ``0..steps``."""
    return steps.bit_length()


def _grid_term(codes: torch.Tensor, scale: torch.Tensor, steps: int) -> torch.Tensor:
    """``scale * (codes * 2/steps - 1)``: one point's contribution, computed the same way everywhere."""
    return scale * (codes.float() * (2.0 / steps) - 1.0)


def multipoint_approximation(weight: torch.Tensor, points: int, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Greedy residual codes ``(points, *shape)`` in ``0..steps`` and scales ``(points,)`` (see module doc).

    Greedy is prefix-consistent: the first ``k`` points of a ``p``-point result are the ``k``-point result.
    """
    residual = weight.detach().float()
    codes, scales = [], []
    for _ in range(points):
        scale = residual.abs().max()
        unit = residual / scale if scale > 0 else torch.zeros_like(residual)
        code = torch.round((unit + 1.0) * (steps / 2)).clamp_(0, steps).to(torch.int32)
        residual = residual - _grid_term(code, scale, steps)
        codes.append(code)
        scales.append(scale)
    return torch.stack(codes), torch.stack(scales)


@register_packed
class MultipointWeight(PackedWeight):
    """``w = sum_t scales[t] * (codes[t] * 2/steps - 1)``; ``bits`` is the width of one code (one point)."""

    kind = "multipoint"

    def __init__(self, codes: torch.Tensor, bits: int, steps: int, scales: torch.Tensor):
        super().__init__()
        if codes.dim() < 2 or scales.shape != codes.shape[:1]:
            raise ValueError("multipoint codes need shape (points, *weight) and one scale per point")
        if not 1 <= steps < 2**bits:
            raise ValueError(f"a grid of {steps} steps does not fit {bits}-bit codes")
        if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) > steps):
            raise ValueError(f"codes out of range for a grid of {steps} steps")
        self.bits, self.steps = int(bits), int(steps)
        self.register_buffer("codes", codes.to(torch.int32))
        self.register_buffer("scales", scales.float())

    @property
    def points(self) -> int:
        """Low-precision values summed per weight."""
        return self.codes.shape[0]

    def decode(self) -> torch.Tensor:
        total = torch.zeros(self.codes.shape[1:], device=self.codes.device)
        for code, scale in zip(self.codes, self.scales, strict=True):
            total = total + _grid_term(code, scale, self.steps)
        return total

    def pack(self) -> PackedParts:
        return ({"codes": self.codes, "scales": self.scales},
                {"codes": ("bitpack", {"bits": self.bits}), "scales": "raw"}, {"bits": self.bits, "steps": self.steps})

    @classmethod
    def unpack(cls, parts, info):
        _checked_parts(parts, {"codes", "scales"})
        steps = info.get("steps")
        if not isinstance(steps, int) or isinstance(steps, bool):
            raise ValueError(f"bad grid steps {str(steps)[:20]}")
        return cls(parts["codes"], _checked_bits(info), steps, parts["scales"])


def plan_points(model: nn.Module, cfg: MultipointConfig, ctx: Context) -> Allocation:
    """Points per layer by importance: the knapsack of the module doc over the measured sensitivities."""
    layers = quantizable_layers(model, cfg.skip)
    names = [name for name, _ in layers]
    sizes = [module.weight.numel() for _, module in layers]
    options = list(range(1, cfg.max_points + 1))
    approximations = {name: multipoint_approximation(m.weight, cfg.max_points, cfg.steps) for name, m in layers}

    def approximate_only(trial: nn.Module, layer: str, points: int) -> nn.Module:
        codes, scales = approximations[layer]
        weight = MultipointWeight(codes[:points], grid_bits(cfg.steps), cfg.steps, scales[:points])
        parametrize.register_parametrization(trial.get_submodule(layer), "weight", weight)
        return trial

    table = sensitivity_table(model, names, options, approximate_only, ctx.dataset, SENSITIVITY_SAMPLES,
                              cfg.sensitivity)
    costs = [[n * p for p in options] for n in sizes]
    picks = solve_multiple_choice_knapsack(costs, table, cfg.points * sum(sizes))
    return Allocation(names, sizes, options, table, {n: options[j] for n, j in zip(names, picks, strict=True)})


@register_technique("quantize.multipoint", MultipointConfig, applies_to=QUANTIZABLE_LAYERS,
                    claims=("weight_bits", "size_bytes"))
def quantize_multipoint(model: nn.Module, cfg: MultipointConfig, ctx: Context) -> nn.Module:
    """Approximate each weight as a sum of low-precision grid values (more points for sensitive layers)."""
    layers = quantizable_layers(model, cfg.skip)
    points = (plan_points(model, cfg, ctx).chosen if cfg.allocation == "importance"
              else {name: cfg.points for name, _ in layers})
    for name, module in layers:
        codes, scales = multipoint_approximation(module.weight, points[name], cfg.steps)
        weight = MultipointWeight(codes, grid_bits(cfg.steps), cfg.steps, scales)
        parametrize.register_parametrization(module, "weight", weight)
    return model
