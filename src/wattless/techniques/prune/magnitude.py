"""Unstructured magnitude pruning (Han et al., 2015): zero the smallest weights, then fine-tune.

Masks are PyTorch parametrizations, so the pruned model stays an ``nn.Module``, masks hold during
fine-tuning, and export/evaluation run exactly the function that is deployed. One-shot here;
iterative and gradual schedules come with the pruning suite.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import nn
from torch.nn.utils import parametrize

from ...train import TrainConfig, fit
from .._registry import Context, TechniqueConfig, register_technique

PRUNABLE = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


class MagnitudePruneConfig(TechniqueConfig):
    sparsity: float = Field(0.5, ge=0.0, lt=1.0, description="fraction of weights set to zero")
    scope: Literal["layer", "global"] = "layer"
    finetune_epochs: int = Field(2, ge=0, le=1000)
    lr: float = Field(5e-4, gt=0, description="fine-tuning learning rate")


class WeightMask(nn.Module):
    """Parametrization ``w -> w * mask`` with a fixed 0/1 mask buffer."""

    def __init__(self, mask: torch.Tensor):
        super().__init__()
        self.register_buffer("mask", mask)

    def forward(self, weight):
        return weight * self.mask


def prunable_weights(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(name, module)`` of every Linear/Conv layer whose ``weight`` can be masked."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, PRUNABLE)]


def _keep_mask(values: torch.Tensor, sparsity: float) -> torch.Tensor:
    """0/1 mask zeroing exactly ``round(sparsity * numel)`` smallest-magnitude entries (ties by position)."""
    flat = values.detach().abs().flatten()
    mask = torch.ones_like(flat)
    count = int(round(sparsity * flat.numel()))
    if count:
        mask[flat.argsort(stable=True)[:count]] = 0.0
    return mask.reshape(values.shape)


def magnitude_masks(model: nn.Module, sparsity: float, scope: str) -> dict[str, torch.Tensor]:
    """0/1 masks (by layer name) removing the smallest-magnitude weights, per layer or over all layers."""
    layers = prunable_weights(model)
    if scope == "layer":
        return {name: _keep_mask(m.weight, sparsity) for name, m in layers}
    joint = _keep_mask(torch.cat([m.weight.detach().flatten() for _, m in layers]), sparsity)
    sizes = [m.weight.numel() for _, m in layers]
    return {name: part.reshape(m.weight.shape) for (name, m), part in zip(layers, joint.split(sizes), strict=True)}


@register_technique("prune.magnitude", MagnitudePruneConfig)
def prune_magnitude(model: nn.Module, cfg: MagnitudePruneConfig, ctx: Context) -> nn.Module:
    """Zero the smallest weights (per layer or globally), then fine-tune with the masks held."""
    masks = magnitude_masks(model, cfg.sparsity, cfg.scope)
    for name, module in prunable_weights(model):
        parametrize.register_parametrization(module, "weight", WeightMask(masks[name]))
    if cfg.finetune_epochs:
        fit(model, ctx.dataset, TrainConfig(epochs=cfg.finetune_epochs, lr=cfg.lr, seed=ctx.seed))
    return model
