"""N:M semi-structured sparsity: in every group of M consecutive weights along the input dimension, keep the N of
largest magnitude (2:4 as in Mishra et al., 2021, "Accelerating Sparse Deep Neural Networks"; NVIDIA ASP).

Groups run along dimension 1 of the weight (input features of a Linear layer, input channels of a convolution,
at each output channel and kernel position), the reduction dimension that sparse matrix units expect. A layer
whose input size M does not divide is skipped with a warning (as ASP does; e.g. a first convolution on one
input channel); a model with no such layer at all is an error. Masks are :class:`WeightMask` parametrizations,
so the pattern holds through fine-tuning.
"""

from __future__ import annotations

import warnings

import torch
from pydantic import Field, model_validator
from torch import nn

from ...errors import ConfigError
from ...train import LearningRateValue
from .._registry import Context, TechniqueConfig, finetune, register_technique
from .magnitude import LINEAR_OR_CONV, prunable_weights, set_masks


class NMPruneConfig(TechniqueConfig):
    """Defaults checked for issue 18 (2:4 on the 10-epoch LeNet-300-100, Fashion-MNIST; drops in points,
    validation / test): 2 epochs at lr 5e-4 (the defaults) 0.13 / 0.16, at 1e-3 0.32 / 0.36; 3 epochs at 5e-4
    -0.10 / 0.29, at 1e-3 -0.10 / 0.34. No setting was better, so they stay."""

    n: int = Field(2, ge=1, le=255, description="weights kept in every group")
    m: int = Field(4, ge=2, le=256, description="consecutive weights per group, along the input dimension")
    finetune_epochs: int = Field(2, ge=0, le=1000)
    lr: LearningRateValue = Field(5e-4, description="fine-tuning learning rate")

    @model_validator(mode="after")
    def _n_below_m(self) -> NMPruneConfig:
        if self.n >= self.m:
            raise ValueError(f"n={self.n} must be smaller than m={self.m} (n:m keeps n weights of every m)")
        return self


def nm_mask(weight: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """0/1 mask keeping the ``n`` largest-magnitude weights (ties: the first) of every ``m`` consecutive ones along
    dimension 1; that dimension's size must be a multiple of ``m``."""
    grouped = weight.detach().abs().movedim(1, -1)  # (out, *kernel, in): groups of m input channels
    shape = grouped.shape
    groups = grouped.reshape(-1, m)
    keep = groups.argsort(dim=1, descending=True, stable=True)[:, :n]
    mask = torch.zeros_like(groups).scatter_(1, keep, 1.0)
    return mask.reshape(shape).movedim(-1, 1)


@register_technique("prune.nm", NMPruneConfig, applies_to=LINEAR_OR_CONV,
                    claims=("nonzero_params", "size_bytes"))
def prune_nm(model: nn.Module, cfg: NMPruneConfig, ctx: Context) -> nn.Module:
    """Keep the N largest of every M consecutive input weights (2:4 by default), then fine-tune with masks held."""
    layers = prunable_weights(model)
    fitting = [(name, layer) for name, layer in layers if layer.weight.shape[1] % cfg.m == 0]
    skipped = [f"{name} ({layer.weight.shape[1]} inputs)" for name, layer in layers if layer.weight.shape[1] % cfg.m]
    if not fitting:
        raise ConfigError(f"no layer has an input size divisible by m={cfg.m} ({', '.join(skipped) or 'no layers'}); "
                          "choose an m that divides the input sizes")
    if skipped:
        warnings.warn(f"prune.nm {cfg.n}:{cfg.m}: left dense, input size not divisible by {cfg.m}: "
                      f"{', '.join(skipped)}", stacklevel=2)
    set_masks(model, {name: nm_mask(layer.weight, cfg.n, cfg.m) for name, layer in fitting})
    finetune(model, ctx, cfg.finetune_epochs, cfg.lr)
    return model
