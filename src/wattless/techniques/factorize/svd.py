"""Truncated-SVD factorization of Linear layers (Xue et al., Interspeech 2013; Denton et al., NeurIPS 2014).

W (out x in) ~ U_r S_r V_r^T runs as two Linear layers, in -> r (no bias) -> out (the original bias), which
saves parameters and MACs whenever r (in + out) < in out. A layer whose chosen rank would not save
parameters is left as it is.
"""

from __future__ import annotations

import math

import torch
from pydantic import Field
from torch import nn

from ...structure import register_edit
from .._registry import Context, register_technique
from ._common import (
    FactorizeConfig,
    check_rank,
    factorize_layers,
    having,
    layer_to_replay,
    replace_layer,
    select_layers,
    worth_factorizing,
)


class SVDConfig(FactorizeConfig):
    """Rank per layer by exactly one of ``energy`` (the default), ``ratio`` or ``rank``; ``layers`` defaults
    to every Linear but the last (the output layer)."""

    RANK_RULES = ("energy", "ratio", "rank")
    energy: float | None = Field(0.9, gt=0, le=1, description="keep the fewest singular values whose squares "
                                 "sum to this fraction of the total")
    ratio: float | None = Field(None, gt=0, le=1, description="rank = ceil(ratio * min(in, out))")
    rank: int | None = Field(None, ge=1, description="the same rank for every chosen layer")


def svd_rank(singular_values: torch.Tensor, cfg: SVDConfig) -> int:
    """The rank ``cfg`` asks for, given a layer's singular values (descending); may exceed the layer's."""
    if cfg.rank is not None:
        return cfg.rank
    if cfg.ratio is not None:
        return math.ceil(cfg.ratio * len(singular_values))
    energy = singular_values.double() ** 2
    if energy.sum() == 0:
        return 1
    retained = energy.cumsum(0) / energy.sum()
    return min(int((retained < cfg.energy - 1e-12).sum()) + 1, len(singular_values))


def factorized_linear(in_features: int, out_features: int, rank: int, bias: bool, *,
                      device: torch.device | None = None, dtype: torch.dtype | None = None) -> nn.Sequential:
    """The two layers that replace a Linear: ``in -> rank`` without bias, then ``rank -> out``."""
    return nn.Sequential(nn.Linear(in_features, rank, bias=False, device=device, dtype=dtype),
                         nn.Linear(rank, out_features, bias=bias, device=device, dtype=dtype))


def svd_linear(linear: nn.Linear, rank: int) -> nn.Sequential:
    """``linear`` as two Linear layers of rank ``rank`` (exact at rank ``min(in, out)``).

    Each factor takes ``sqrt(S)``, so both start at the same scale for fine-tuning.
    """
    weight = linear.weight.detach()
    left, singular, right = torch.linalg.svd(weight.double(), full_matrices=False)
    root = singular[:rank].sqrt()
    layers = factorized_linear(linear.in_features, linear.out_features, rank, linear.bias is not None,
                               device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        layers[0].weight.copy_(root[:, None] * right[:rank])
        layers[1].weight.copy_(left[:, :rank] * root)
        if linear.bias is not None:
            layers[1].bias.copy_(linear.bias)
    return layers


@register_technique("factorize.svd", SVDConfig,
                    applies_to=having(lambda module: isinstance(module, nn.Linear), "Linear layers"),
                    claims=("params", "macs", "size_bytes"))
def factorize_svd(model: nn.Module, cfg: SVDConfig, ctx: Context) -> nn.Module:
    """Replace Linear layers by two low-rank Linear layers (truncated SVD), then fine-tune."""
    all_linear = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    layers = select_layers(model, cfg, lambda module: isinstance(module, nn.Linear), "Linear layers",
                           default_names=all_linear[:-1])

    def plan(name: str, linear: nn.Linear):
        limit = min(linear.in_features, linear.out_features)
        rank = check_rank(svd_rank(torch.linalg.svdvals(linear.weight.detach().double()), cfg), limit, name,
                          f"Linear {linear.in_features}->{linear.out_features}")
        if not worth_factorizing(rank * (linear.in_features + linear.out_features),
                                 linear.in_features * linear.out_features):
            return None  # the factors would hold as many parameters as the layer
        return svd_linear(linear, rank), {"kind": "factorize.svd", "rank": rank}

    return factorize_layers(model, cfg, ctx, layers, plan)


@register_edit("factorize.svd")
def replay_svd(model: nn.Module, edit: dict) -> None:
    """Rebuild a recorded SVD factorization's structure (weights are loaded afterwards)."""
    linear = layer_to_replay(model, edit, nn.Linear)
    rank = int(edit["rank"])
    if not 1 <= rank <= min(linear.in_features, linear.out_features):
        raise ValueError(f"rank {rank} does not fit layer {edit['layer']!r}")
    replace_layer(model, edit["layer"], factorized_linear(linear.in_features, linear.out_features, rank,
                                                          linear.bias is not None, device=linear.weight.device,
                                                          dtype=linear.weight.dtype))
