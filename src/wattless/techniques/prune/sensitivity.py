"""Sensitivity-driven pruning: measure how much each layer minds losing weights, share a byte budget out
accordingly, then prune gradually to those per-layer sparsities while fine-tuning.

1. **Sensitivity** (measured, one-shot): on ``samples`` training examples (never the validation or test
   split, which judge the result), each layer alone is magnitude-pruned to each sparsity of :data:`GRID` and
   the task's loss is measured against the unpruned model's; the curve is made non-decreasing (a layer that
   loses more weights never counts as less hurt). As in Han et al.'s sensitivity analysis (NeurIPS 2015)
   and Distiller's, but the choice below is made on bytes, not on a single threshold.
2. **Allocation** under a byte budget: the weights' estimated coded size is
   ``n H(d) + n d value_bits`` bits per layer (``n`` weights, ``d = 1 - sparsity`` kept: the entropy of where the
   survivors are plus ``value_bits`` per survivor, the codes ``share.kmeans`` stores next), and the budget is
   the fp32 weights' bytes over ``size_ratio``. The sparsities are the least summed loss increase within the
   budget, solved exactly as a multiple-choice knapsack (the solver mixed precision uses; each layer's bits
   rounded up to whole bits, so the choice never exceeds the budget). Unlike a Lagrangian relaxation (one
   multiplier trading loss for bits, as in rate-distortion bit allocation), it also reaches grid points off a
   curve's lower convex hull and leaves no budget unused that another combination could spend. Big layers thus
   give up more weights than small sensitive ones (LeNet-300-100's output layer keeps most of its 1,000 weights
   while its 235,200-weight first layer keeps about 1.5%, with the Lagrangian allocation that was used before).
   With ``saturation`` below 1, no layer goes past the sparsity where its one-shot loss increase exceeds that
   fraction of the increase with all its weights gone: past it the curve flattens out near chance-level loss,
   so further pruning looks nearly free there though fine-tuning no longer recovers it.
3. **Pruning**: ``prune.magnitude`` with those per-layer sparsities, on the gradual (Zhu & Gupta) schedule
   (at once when ``finetune_epochs`` is 0). With ``distill_alpha`` the fine-tuning also follows the unpruned
   model's soft targets (Hinton et al.'s loss at ``temperature``, as ``distill.hinton``): the model teaches its
   own pruned self.

The pruned model holds the allocation: ``wattless inspect`` shows each layer's non-zero weights.

Measured with the Lagrangian allocation, before the exact knapsack replaced it (BENCHMARKS.md, frontier study,
recipe ``deep-compression-auto``: size_ratio 120, 16 epochs, distilled, then 8 clusters): LeNet-300-100 138.6x
smaller than fp32 at 0.92 / 1.12 points (validation / test); LeNet-5 97.3x at 2.27 / 1.95. One-shot curves
saturate at high sparsity, so on LeNet-5 the allocation takes its 48,000-weight classifier.1 to 99%: use a lower
size_ratio there (60: 55x at 0.67 / 0.64 in a trial run). Fisher (OBD) or output-MSE curves take it to 99% too.

Measured with the knapsack (fresh fp32 models, Fashion-MNIST, then share.kmeans 8 clusters; points val / test):
LeNet-5 at size_ratio 100, 16 epochs: 83.4x at 1.38 / 1.54; with saturation 0.7 (classifier.1 capped at 98%)
83.4x at 1.47 / 1.62. With 32 epochs and the k-means centroids fine-tuned at lr 0.001, over seeds 0, 1, 2:
saturation 1: 82.3-83.4x at 1.33, 0.68, 1.18 / 1.33, 1.28, 1.17; saturation 0.7: 80.4-82.5x at 0.38, 1.05, 1.22 /
0.93, 0.93, 0.81. LeNet-300-100 at size_ratio 120 (saturation 0.7 leaves its allocation unchanged): 16 epochs
123.1x at 0.82 / 0.84; 32 epochs and centroid lr 0.001 119.5x at 0.37 / 0.54.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from pydantic import Field
from torch import nn

from ...artifact.breakdown import binary_entropy
from ...errors import ConfigError
from ...train import LearningRateValue
from .._knapsack import solve_multiple_choice_knapsack
from .._registry import Context, TechniqueConfig, register_technique
from .._sensitivity import damage_table
from ..distill.hinton import distillation_loss, teacher_outputs
from .magnitude import (
    LINEAR_OR_CONV,
    MagnitudePruneConfig,
    _keep_mask,
    prunable_weights,
    prune_gradual,
    prune_magnitude,
)

GRID = (0.0, 0.5, 0.7, 0.8, 0.85, 0.9, 0.93, 0.95, 0.96, 0.97, 0.98, 0.985, 0.99, 0.995)
"""Sparsities at which each layer's sensitivity is measured (the allocation picks among them)."""


class SensitivityPruneConfig(TechniqueConfig):
    size_ratio: float = Field(100.0, ge=1.0, le=100_000.0,
                              description="the weights' estimated coded bytes = their fp32 bytes / size_ratio")
    value_bits: float = Field(3.0, gt=0.0, le=32.0,
                              description="bits per surviving weight in the estimate (share.kmeans 8 clusters: 3)")
    max_sparsity: float = Field(0.99, ge=0.0, lt=1.0, description="no layer is pruned beyond this")
    saturation: float = Field(1.0, gt=0.0, le=1.0, description="no layer is pruned past the sparsity where its "
                              "loss increase exceeds this fraction of the increase with all its weights removed "
                              "(1: no such cap)")
    samples: int = Field(2048, ge=16, le=1_000_000, description="training examples the sensitivity is measured on")
    finetune_epochs: int = Field(12, ge=0, le=1000, description="fine-tuning epochs (gradual pruning; 0: prune at "
                                 "once, no fine-tuning)")
    lr: LearningRateValue = Field(1e-3, description="fine-tuning learning rate")
    distill_alpha: float = Field(0.0, ge=0.0, le=1.0, description="weight of the unpruned model's soft targets "
                                 "in the fine-tuning loss (0: labels only)")
    temperature: float = Field(2.0, gt=0.0, le=100.0, description="soft-target temperature (with distill_alpha)")


def _prune_only(model: nn.Module, layer: str, sparsity: float) -> nn.Module:
    """``model`` with only ``layer``'s weights magnitude-pruned to ``sparsity`` (in place)."""
    weight = model.get_submodule(layer).weight
    with torch.no_grad():
        weight.copy_(weight * _keep_mask(weight, sparsity))
    return model


def sensitivity_curves(model: nn.Module, X: np.ndarray, y: np.ndarray, task: str,
                       grid: tuple[float, ...] = GRID) -> dict[str, list[float]]:
    """Per prunable layer, the loss increase (task loss units, made non-decreasing) when that layer alone is
    magnitude-pruned to each sparsity of ``grid`` (the shared :func:`damage_table`); the model is left as it was."""
    names = [name for name, _ in prunable_weights(model)]
    table = damage_table(model, names, grid, _prune_only, X, y, task)
    return {name: np.maximum.accumulate(row).tolist() for name, row in zip(names, table, strict=True)}


def saturation_caps(curves: dict[str, list[float]], removed: dict[str, float], fraction: float,
                    grid: tuple[float, ...] = GRID) -> dict[str, float]:
    """Per layer, the highest sparsity of ``grid`` whose loss increase is at most ``fraction`` of ``removed`` (the
    increase with all the layer's weights gone): where the one-shot curve has not yet flattened out near it."""
    return {name: max(s for s, damage in zip(grid, curve, strict=True) if damage <= fraction * removed[name])
            for name, curve in curves.items()}


def estimated_bits(weights: int, sparsity: float, value_bits: float) -> float:
    """Coded bits of a layer of ``weights`` weights at ``sparsity``: where the survivors are (binary entropy per
    weight) plus ``value_bits`` per survivor."""
    kept = 1.0 - sparsity
    return weights * (binary_entropy(kept) + kept * value_bits)


def allocate(curves: dict[str, list[float]], weights: dict[str, int], budget_bits: float, value_bits: float,
             grid: tuple[float, ...] = GRID, max_sparsity: float = 0.99,
             caps: dict[str, float] | None = None) -> dict[str, float]:
    """Per-layer sparsities from ``grid`` (at most ``max_sparsity`` and the layer's entry of ``caps``) with the
    least summed loss increase whose estimated bits fit ``budget_bits``: the exact multiple-choice knapsack, each
    layer's bits rounded up to whole bits (so the choice always fits) and the budget down.

    Raises:
        ConfigError: the budget cannot be met even with every layer at its highest sparsity allowed.
    """
    names = list(curves)
    caps = caps or {}
    top = {name: max(i for i, s in enumerate(grid) if s <= min(max_sparsity, caps.get(name, 1.0))) for name in names}
    # the same options for every layer (the solver takes a table): past a layer's top, its top again
    allowed = {name: [min(i, top[name]) for i, s in enumerate(grid) if s <= max_sparsity] for name in names}
    costs = [[math.ceil(estimated_bits(weights[name], grid[i], value_bits)) for i in allowed[name]] for name in names]
    least = sum(min(row) for row in costs)
    if least > budget_bits:
        fp32 = 32 * sum(weights.values())
        raise ConfigError(f"size_ratio asks for {budget_bits / 8:,.0f} bytes of weights, but even every layer at "
                          f"its highest sparsity allowed takes about {least / 8:,.0f}; use a size_ratio up to "
                          f"{math.floor(fp32 / least)} or raise max_sparsity (or saturation)")
    losses = [[curves[name][i] for i in allowed[name]] for name in names]
    picks = solve_multiple_choice_knapsack(costs, losses, math.floor(budget_bits))
    return {name: grid[allowed[name][k]] for name, k in zip(names, picks, strict=True)}


def _sample(ctx: Context, count: int) -> tuple[np.ndarray, np.ndarray]:
    X, y = ctx.dataset.split("train")
    if len(X) <= count:
        return X, y
    rows = np.sort(np.random.default_rng(ctx.seed).choice(len(X), count, replace=False))
    return X[rows], y[rows]


@register_technique("prune.sensitivity", SensitivityPruneConfig, applies_to=LINEAR_OR_CONV,
                    claims=("nonzero_params", "size_bytes"))
def prune_sensitivity(model: nn.Module, cfg: SensitivityPruneConfig, ctx: Context) -> nn.Module:
    """Measure each layer's sensitivity, share a byte budget out by it, and prune gradually to those sparsities."""
    layers = prunable_weights(model)
    if not layers:
        raise ConfigError("the model has no Linear or Conv layers to prune")
    weights = {name: layer.weight.numel() for name, layer in layers}
    X, y = _sample(ctx, cfg.samples)
    curves = sensitivity_curves(model, X, y, ctx.dataset.task, GRID + (1.0,))
    removed = {name: curve.pop() for name, curve in curves.items()}  # the damage with all the layer's weights gone
    budget = 32 * sum(weights.values()) / cfg.size_ratio
    allocation = allocate(curves, weights, budget, cfg.value_bits, max_sparsity=cfg.max_sparsity,
                          caps=saturation_caps(curves, removed, cfg.saturation))
    schedule = "gradual" if cfg.finetune_epochs else "oneshot"
    magnitude = MagnitudePruneConfig(scope="layer", schedule=schedule, layer_sparsity=allocation,
                                     finetune_epochs=cfg.finetune_epochs, lr=cfg.lr)
    if not cfg.distill_alpha or not cfg.finetune_epochs:
        return prune_magnitude(model, magnitude, ctx)
    teacher = teacher_outputs(model, ctx.dataset)  # the unpruned model's outputs, before any weight goes
    prune_gradual(model, magnitude, ctx, loss=distillation_loss(teacher, ctx.dataset, cfg.temperature,
                                                                cfg.distill_alpha))
    return model
