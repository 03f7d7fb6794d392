"""Unstructured magnitude pruning: zero the smallest weights, per layer or over all layers, and fine-tune.

Three schedules, all ending at exactly the requested sparsity (rounded to whole weights per layer, or over
the whole model for ``scope=global``):

- ``oneshot``: prune once, then fine-tune (Han et al., NeurIPS 2015, "Learning both Weights and Connections").
- ``iterative``: ``steps`` rounds of prune-then-retrain (Han et al., 2015), on a geometric ramp: round ``k``
  reaches ``1 - (1 - s)**(k / steps)``, so every round removes the same fraction of the surviving weights
  (as in Frankle & Carbin, ICLR 2019). The ``finetune_epochs`` are shared out over the rounds.
- ``gradual``: automated gradual pruning (Zhu & Gupta, 2017, "To prune, or not to prune"): masks are
  recomputed after every optimizer step on the cubic ramp ``s_t = s_f + (s_i - s_f)(1 - t/n)**3`` over the
  first half of the fine-tuning epochs; the rest recovers at the final sparsity. The default, with
  ``scope=global`` and ``lr=0.001`` (see :class:`MagnitudePruneConfig` for the evidence).

Masks are :class:`WeightMask` parametrizations, so masks hold during fine-tuning and evaluation runs exactly
what is deployed. Re-pruning a masked layer updates its mask (never revives a pruned weight) instead of
stacking another parametrization.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Literal

import torch
from pydantic import ConfigDict, Field, field_validator, model_validator
from torch import nn
from torch.nn.utils import parametrize

from ...errors import ConfigError
from ...train import LearningRateValue, steps_per_epoch
from .._registry import Context, TechniqueConfig, finetune, finetune_config, layers_of, register_technique

PRUNABLE = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
LINEAR_OR_CONV = layers_of(*PRUNABLE, what="Linear or Conv layer")
GRADUAL_RAMP_FRACTION = 0.5
"""Share of the fine-tuning epochs (rounded up to whole epochs) over which the gradual schedule prunes."""


def _is_zero(value: Any) -> bool:
    """Whether a raw field value (an int, float or text from a recipe) is zero."""
    try:
        return float(value) == 0.0
    except (TypeError, ValueError):
        return False


class MagnitudePruneConfig(TechniqueConfig):
    """Defaults (version 2): the settings the pruning study found best on the zoo, so that the short command
    (``prune.magnitude:sparsity=0.9,finetune_epochs=3``) gets the good result.

    Evidence: sparsity 0.9, 3 fine-tuning epochs on the 10-epoch LeNet-300-100 (Fashion-MNIST, seed 0; run for
    issue 18, drops in points, validation / test): scope=global, schedule=gradual, lr=0.001: 0.08 / 0.28;
    global, oneshot, 0.001: 0.40 / 0.30; global, iterative, 0.001: 0.83 / 0.69; global, gradual, 5e-4:
    0.78 / 0.63; global, oneshot, 5e-4: 0.98 / 0.63; layer, gradual, 0.001: 1.43 / 1.00; layer, oneshot,
    0.001: 1.63 / 1.89; layer, gradual, 5e-4: 1.90 / 1.79; layer, oneshot, 5e-4 (the version-1 defaults):
    2.70 / 2.92. The README's ``wattless compress`` example: test drop 0.25 (2.92 with the version-1
    defaults); followed by ``share.kmeans:clusters=16``: 0.34 (2.87). The pruning study
    (benchmarks/results/pruning.md) reached 0.11 at 90% and 0.46 at 95% with global, gradual, 0.001 (6 and 8
    epochs). MobileNet (width 0.25), the compatibility matrix's cell that
    missed (benchmarks/results/compat.md: 24 points lost at 50% with the version-1 scope and schedule), rerun
    on its stored model (81.5% on 200 test samples; sparsity 0.5, 5 epochs at lr 0.003): layer, oneshot 68%;
    layer, gradual 76%; global, oneshot 84%; global, gradual 90%.

    Implied settings: ``layer_sparsity`` without a ``scope`` means ``scope=layer`` (per-layer targets);
    ``finetune_epochs=0`` without a ``schedule`` means ``schedule=oneshot`` (gradual pruning needs fine-tuning
    to prune during). Configs stored at version 1 (older model files) keep the version-1 defaults for the
    fields they leave out: ``scope=layer``, ``schedule=oneshot``, ``lr=5e-4`` (:meth:`migrate`).
    """

    model_config = ConfigDict(coerce_numbers_to_str=True)  # layer names such as 1 in layer_sparsity={1: 0.5}

    version: int = 2
    defaults_before: ClassVar[dict[int, dict[str, Any]]] = {1: {"scope": "layer", "schedule": "oneshot", "lr": 5e-4}}
    sparsity: float = Field(0.5, ge=0.0, lt=1.0, description="fraction of weights set to zero")
    scope: Literal["layer", "global"] = Field("global", description="rank weights over all layers (global) or "
                                              "within each layer; layer_sparsity implies layer")
    schedule: Literal["oneshot", "iterative", "gradual"] = Field(
        "gradual", description="how pruning reaches the sparsity; finetune_epochs=0 implies oneshot")
    steps: int = Field(3, ge=1, le=100, description="prune-retrain rounds of the iterative schedule")
    finetune_epochs: int = Field(2, ge=0, le=1000, description="fine-tuning epochs in all (every schedule)")
    lr: LearningRateValue = Field(1e-3, description="fine-tuning learning rate")
    layer_sparsity: dict[str, float] = Field(default_factory=dict, description="per-layer overrides (scope=layer)")

    @model_validator(mode="before")
    @classmethod
    def _implied_scope_and_schedule(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        implied = {}
        if data.get("layer_sparsity") and "scope" not in data:
            implied["scope"] = "layer"
        if "schedule" not in data and _is_zero(data.get("finetune_epochs")):
            implied["schedule"] = "oneshot"
        return {**data, **implied}

    @field_validator("layer_sparsity")
    @classmethod
    def _layer_sparsity_in_range(cls, value: dict[str, float]) -> dict[str, float]:
        for name, sparsity in value.items():
            if sparsity >= 1.0:
                raise ValueError(f"layer_sparsity[{name!r}]={sparsity} would prune the layer away entirely; "
                                 "use a value below 1")
            if sparsity < 0.0:
                raise ValueError(f"layer_sparsity[{name!r}]={sparsity} is negative; use a value in [0, 1)")
        return value

    @model_validator(mode="after")
    def _schedule_fits(self) -> MagnitudePruneConfig:
        if self.layer_sparsity and self.scope != "layer":
            raise ValueError(f"layer_sparsity overrides need scope=layer, not scope={self.scope}; leave scope out "
                             "(layer_sparsity implies scope=layer) or drop layer_sparsity")
        if self.schedule == "iterative" and self.finetune_epochs < self.steps:
            raise ValueError(f"schedule=iterative with steps={self.steps} needs finetune_epochs >= {self.steps} "
                             f"(one retraining epoch per round), got {self.finetune_epochs}")
        if self.schedule == "gradual" and self.finetune_epochs < 1:
            raise ValueError("schedule=gradual prunes while fine-tuning; give finetune_epochs >= 1, or "
                             "schedule=oneshot to prune without fine-tuning")
        return self


class WeightMask(nn.Module):
    """Parametrization ``w -> w * mask`` with a 0/1 mask buffer."""

    def __init__(self, mask: torch.Tensor):
        super().__init__()
        self.register_buffer("mask", mask)

    def forward(self, weight):
        return weight * self.mask


def prunable_weights(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(name, module)`` of every Linear/Conv layer whose ``weight`` can be masked."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, PRUNABLE)]


def _keep_mask(values: torch.Tensor, sparsity: float) -> torch.Tensor:
    """0/1 mask zeroing exactly ``round(sparsity * numel)`` smallest-magnitude entries (ties: first positions).

    Selection by k-th value, about 5x faster than a full sort, as gradual pruning runs it every step.
    """
    flat = values.detach().abs().flatten()
    count = int(round(sparsity * flat.numel()))
    if count == 0:
        return torch.ones_like(values)
    threshold = flat.kthvalue(count).values
    below, ties = flat < threshold, flat == threshold
    dropped = below | (ties & (ties.cumsum(0) <= count - int(below.sum())))
    return (~dropped).to(values.dtype).reshape(values.shape)


def magnitude_masks(model: nn.Module, sparsity: float, scope: str,
                    layer_sparsity: Mapping[str, float] | None = None) -> dict[str, torch.Tensor]:
    """0/1 masks (by layer name) removing the smallest-magnitude weights, per layer (with optional per-layer
    sparsities) or over all layers at once.

    Raises:
        ConfigError: ``layer_sparsity`` names an unknown layer, or a layer would lose every weight.
    """
    layers = prunable_weights(model)
    names = [name for name, _ in layers]
    unknown = sorted(set(layer_sparsity or {}) - set(names))
    if unknown:
        raise ConfigError(f"layer_sparsity names unknown layers {unknown}; prunable layers: {names}")
    if not layers:
        raise ConfigError("the model has no Linear or Conv layers to prune")
    if scope == "layer":
        targets = {name: (layer_sparsity or {}).get(name, sparsity) for name in names}
        masks = {name: _keep_mask(m.weight, targets[name]) for name, m in layers}
    else:
        joint = _keep_mask(torch.cat([m.weight.detach().flatten() for _, m in layers]), sparsity)
        parts = joint.split([m.weight.numel() for _, m in layers])
        masks = {name: part.reshape(m.weight.shape) for (name, m), part in zip(layers, parts, strict=True)}
    emptied = [name for name, mask in masks.items() if mask.numel() and not mask.any()]
    if emptied:
        raise ConfigError(f"sparsity={sparsity} ({scope} scope) would prune away every weight of {emptied}; "
                          "lower the sparsity" + (" or use scope=layer" if scope == "global" else ""))
    return masks


def set_masks(model: nn.Module, masks: Mapping[str, torch.Tensor]) -> None:
    """Mask each named layer's weight: update the :class:`WeightMask` that is last in its chain (keeping the old
    mask's zeros, so re-pruning never revives a weight), or add one on top."""
    for name, mask in masks.items():
        module = model.get_submodule(name)
        chain = module.parametrizations["weight"] if parametrize.is_parametrized(module, "weight") else []
        existing = chain[-1] if len(chain) and isinstance(chain[-1], WeightMask) else None
        if existing is None:
            parametrize.register_parametrization(module, "weight", WeightMask(mask))
        else:
            existing.mask.mul_(mask.to(existing.mask.dtype))


def cubic_sparsity(final: float, progress: float, initial: float = 0.0) -> float:
    """Zhu & Gupta's schedule ``s_f + (s_i - s_f)(1 - progress)**3``, ``progress = (t - t0) / (n dt)`` in [0, 1]."""
    progress = min(max(progress, 0.0), 1.0)
    return final + (initial - final) * (1.0 - progress) ** 3


def geometric_sparsity(final: float, progress: float) -> float:
    """Sparsity ``1 - (1 - final)**progress``: equal steps keep equal fractions of the surviving weights."""
    return final if progress >= 1.0 else 1.0 - (1.0 - final) ** progress


def _prune_at(model: nn.Module, cfg: MagnitudePruneConfig, ramp: Callable[[float], float]) -> None:
    """Mask every layer (or the whole model) at sparsity ``ramp(final sparsity)``."""
    set_masks(model, magnitude_masks(model, ramp(cfg.sparsity), cfg.scope,
                                     {name: ramp(s) for name, s in cfg.layer_sparsity.items()}))


def _epochs_per_round(total: int, rounds: int) -> list[int]:
    """``total`` epochs shared out over ``rounds``, the later rounds (the sparser ones) taking the remainder."""
    base, extra = divmod(total, rounds)
    return [base + (1 if k >= rounds - extra else 0) for k in range(rounds)]


def prune_gradual(model: nn.Module, cfg: MagnitudePruneConfig, ctx: Context, **fit_options) -> None:
    """Zhu & Gupta's gradual schedule to ``cfg``'s sparsities while fine-tuning (``fit_options``: e.g. a ``loss``)."""
    ramp_epochs = math.ceil(cfg.finetune_epochs * GRADUAL_RAMP_FRACTION)
    ramp_steps = ramp_epochs * steps_per_epoch(ctx.dataset, finetune_config(ctx, cfg.finetune_epochs, cfg.lr))
    _prune_at(model, cfg, lambda final: 0.0)  # all-ones masks: the parametrizations the ramp updates

    def on_step(step: int) -> None:
        if step <= ramp_steps:
            _prune_at(model, cfg, lambda final: cubic_sparsity(final, step / ramp_steps))

    finetune(model, ctx, cfg.finetune_epochs, cfg.lr, on_step=on_step, best_from_epoch=ramp_epochs, **fit_options)


@register_technique("prune.magnitude", MagnitudePruneConfig, applies_to=LINEAR_OR_CONV,
                    claims=("nonzero_params", "size_bytes"))
def prune_magnitude(model: nn.Module, cfg: MagnitudePruneConfig, ctx: Context) -> nn.Module:
    """Zero the smallest weights (one-shot, iterative or gradual; per layer or global), fine-tuning with masks held."""
    final_masks = magnitude_masks(model, cfg.sparsity, cfg.scope, cfg.layer_sparsity)  # bad layers fail here, early
    if cfg.schedule == "gradual":
        prune_gradual(model, cfg, ctx)
    elif cfg.schedule == "iterative":
        for round_, epochs in enumerate(_epochs_per_round(cfg.finetune_epochs, cfg.steps), start=1):
            _prune_at(model, cfg, lambda final, k=round_: geometric_sparsity(final, k / cfg.steps))
            finetune(model, ctx, epochs, cfg.lr)
    else:
        set_masks(model, final_masks)
        finetune(model, ctx, cfg.finetune_epochs, cfg.lr)
    return model
