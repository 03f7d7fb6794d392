"""CP factorization of Conv2d layers (Lebedev et al., "Speeding-up convolutional neural networks using
fine-tuned CP-decomposition", ICLR 2015).

The kernel K (C_out, C_in, kh, kw) ~ sum_r a_r (x) b_r (x) c_r (x) d_r (tensorly's ``parafac``: alternating
least squares, where the paper uses non-linear least squares) runs as four convolutions: 1x1 (C_in -> R),
depthwise kh x 1 and 1 x kw (R -> R, groups=R; the original stride, padding and dilation split by axis),
1x1 (R -> C_out, the original bias). A layer whose rank would not save weights is left as it is.
"""

from __future__ import annotations

import math
import warnings

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
from .tucker import is_dense_conv

ALS_ITERATIONS, ALS_TOLERANCE = 500, 1e-9


class CPConfig(FactorizeConfig):
    """Rank per layer by exactly one of ``ratio`` (the default) or ``rank``; ``layers`` defaults to every
    Conv2d with ``groups=1``."""

    RANK_RULES = ("ratio", "rank")
    ratio: float | None = Field(0.5, gt=0, le=1, description="rank = ceil(ratio * max(C_in, C_out))")
    rank: int | None = Field(None, ge=1, description="the same rank for every chosen layer")


def max_cp_rank(conv: nn.Conv2d) -> int:
    """An upper bound of any kernel's CP rank: its size over its largest mode (one term per fibre)."""
    return conv.weight.numel() // max(conv.weight.shape)


def cp_params(conv: nn.Conv2d, rank: int) -> int:
    """Weights of the four convolutions (bias left out: it is the same before and after)."""
    return rank * (conv.in_channels + sum(conv.kernel_size) + conv.out_channels)


def _by_axis(value, axis: int, identity: int):
    """The height (axis 0) or width (axis 1) part of a Conv2d option as a pair; 'same'/'valid' stay as is."""
    if isinstance(value, str):
        return value
    return (value[0], identity) if axis == 0 else (identity, value[1])


def cp_structure(conv: nn.Conv2d, rank: int) -> nn.Sequential:
    """The four convolutions that replace ``conv`` at CP rank ``rank``, freshly initialised."""
    options = {"device": conv.weight.device, "dtype": conv.weight.dtype, "padding_mode": conv.padding_mode}
    kh, kw = conv.kernel_size
    depthwise = [
        nn.Conv2d(rank, rank, kernel, groups=rank, bias=False, stride=_by_axis(conv.stride, axis, 1),
                  padding=_by_axis(conv.padding, axis, 0), dilation=_by_axis(conv.dilation, axis, 1), **options)
        for axis, kernel in ((0, (kh, 1)), (1, (1, kw)))
    ]
    return nn.Sequential(nn.Conv2d(conv.in_channels, rank, 1, bias=False, **options), *depthwise,
                         nn.Conv2d(rank, conv.out_channels, 1, bias=conv.bias is not None, **options))


def cp_conv(conv: nn.Conv2d, rank: int, seed: int = 0) -> nn.Sequential:
    """``conv`` as a rank-``rank`` CP decomposition of its kernel.

    The factors are balanced (unit columns scaled by the fourth root of their term's weight), so all four
    convolutions start at the same scale for fine-tuning.
    """
    kernel = conv.weight.detach().double().cpu().numpy()
    with warnings.catch_warnings():  # a rank above a mode's size makes the SVD initialisation say so
        warnings.filterwarnings("ignore", message="Trying to compute SVD")
        from tensorly.decomposition import parafac  # here, not at import: tensorly takes ~0.2 s to load
        weights, factors = parafac(kernel, rank, init="svd", normalize_factors=True, n_iter_max=ALS_ITERATIONS,
                                   tol=ALS_TOLERANCE, random_state=seed)
    out_factor, in_factor, vertical, horizontal = (factor * weights**0.25 for factor in factors)  # weights >= 0
    layers = cp_structure(conv, rank)
    as_weight = {"device": conv.weight.device, "dtype": conv.weight.dtype}
    with torch.no_grad():
        layers[0].weight.copy_(torch.as_tensor(in_factor.T[:, :, None, None], **as_weight))
        layers[1].weight.copy_(torch.as_tensor(vertical.T[:, None, :, None], **as_weight))
        layers[2].weight.copy_(torch.as_tensor(horizontal.T[:, None, None, :], **as_weight))
        layers[3].weight.copy_(torch.as_tensor(out_factor[:, :, None, None], **as_weight))
        if conv.bias is not None:
            layers[3].bias.copy_(conv.bias)
    return layers


@register_technique("factorize.cp", CPConfig, applies_to=having(is_dense_conv, "Conv2d layers with groups=1"),
                    claims=("params", "macs", "size_bytes"))
def factorize_cp(model: nn.Module, cfg: CPConfig, ctx: Context) -> nn.Module:
    """Replace Conv2d layers by 1x1, depthwise kx1 and 1xk, and 1x1 convolutions (CP), then fine-tune."""
    def plan(name: str, conv: nn.Conv2d):
        if cfg.rank is not None:
            rank = check_rank(cfg.rank, max_cp_rank(conv), name, "kernel size over its largest mode")
        else:
            rank = min(math.ceil(cfg.ratio * max(conv.in_channels, conv.out_channels)), max_cp_rank(conv))
        if not worth_factorizing(cp_params(conv, rank), conv.weight.numel()):
            return None  # the factors would hold as many weights as the layer
        return cp_conv(conv, rank, seed=ctx.seed), {"kind": "factorize.cp", "rank": rank}

    layers = select_layers(model, cfg, is_dense_conv, "Conv2d layers with groups=1")
    return factorize_layers(model, cfg, ctx, layers, plan)


@register_edit("factorize.cp")
def replay_cp(model: nn.Module, edit: dict) -> None:
    """Rebuild a recorded CP factorization's structure (weights are loaded afterwards)."""
    conv = layer_to_replay(model, edit, nn.Conv2d)
    rank = int(edit["rank"])
    if not (1 <= rank <= max_cp_rank(conv) and is_dense_conv(conv)):
        raise ValueError(f"rank {rank} does not fit layer {edit['layer']!r}")
    replace_layer(model, edit["layer"], cp_structure(conv, rank))
