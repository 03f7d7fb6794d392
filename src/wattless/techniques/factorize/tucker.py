"""Tucker-2 factorization of Conv2d layers (Kim et al., "Compression of deep convolutional neural networks
for fast and low power mobile applications", ICLR 2016).

The kernel K (C_out, C_in, kh, kw) ~ core x_0 U_out x_1 U_in is decomposed on its two channel modes
(tensorly's ``partial_tucker``) and runs as three convolutions: 1x1 (C_in -> R_in), kh x kw (R_in -> R_out,
the original stride, padding and dilation), 1x1 (R_out -> C_out, the original bias). Channel mixing
commutes with padding of any mode, so the three compute the original layer exactly at full ranks. A layer
whose ranks would not save weights is left as it is.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

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
from .vbmf import vbmf_rank

Rank = Annotated[int, Field(ge=1)]


class TuckerConfig(FactorizeConfig):
    """Ranks per layer by exactly one of ``ratio`` (the default) or ``ranks``; ``layers`` defaults to every
    Conv2d with ``groups=1``."""

    RANK_RULES = ("ratio", "ranks")
    ratio: float | None = Field(0.5, gt=0, le=1, description="[r_in, r_out] = ceil(ratio * [C_in, C_out])")
    ranks: tuple[Rank, Rank] | Literal["vbmf"] | None = Field(
        None, description="[r_in, r_out] for every chosen layer, or 'vbmf' to estimate them per layer")


def is_dense_conv(module: nn.Module) -> bool:
    """A Conv2d whose channels are not split into groups (the channel modes can be factorized)."""
    return isinstance(module, nn.Conv2d) and module.groups == 1


def tucker_ranks(conv: nn.Conv2d, cfg: TuckerConfig) -> tuple[int, int]:
    """``(r_in, r_out)`` that ``cfg`` asks for; 'vbmf' estimates each on the kernel's unfolding (at least 1)."""
    if cfg.ratio is not None:
        return math.ceil(cfg.ratio * conv.in_channels), math.ceil(cfg.ratio * conv.out_channels)
    if cfg.ranks == "vbmf":
        kernel = conv.weight.detach().double().cpu().numpy()
        r_in = vbmf_rank(kernel.transpose(1, 0, 2, 3).reshape(conv.in_channels, -1))
        return max(r_in, 1), max(vbmf_rank(kernel.reshape(conv.out_channels, -1)), 1)
    return cfg.ranks


def tucker_params(conv: nn.Conv2d, r_in: int, r_out: int) -> int:
    """Weights of the three convolutions (bias left out: it is the same before and after)."""
    kh, kw = conv.kernel_size
    return conv.in_channels * r_in + r_in * r_out * kh * kw + r_out * conv.out_channels


def tucker_structure(conv: nn.Conv2d, r_in: int, r_out: int) -> nn.Sequential:
    """The three convolutions that replace ``conv`` at ranks ``(r_in, r_out)``, freshly initialised."""
    options = {"device": conv.weight.device, "dtype": conv.weight.dtype}
    return nn.Sequential(
        nn.Conv2d(conv.in_channels, r_in, 1, bias=False, **options),
        nn.Conv2d(r_in, r_out, conv.kernel_size, stride=conv.stride, padding=conv.padding,
                  dilation=conv.dilation, padding_mode=conv.padding_mode, bias=False, **options),
        nn.Conv2d(r_out, conv.out_channels, 1, bias=conv.bias is not None, **options),
    )


def tucker2_conv(conv: nn.Conv2d, r_in: int, r_out: int) -> nn.Sequential:
    """``conv`` as its Tucker-2 decomposition at ranks ``(r_in, r_out)`` (exact at full ranks)."""
    kernel = conv.weight.detach().double().cpu().numpy()
    from tensorly.decomposition import partial_tucker  # here, not at import: tensorly takes ~0.2 s to load
    (core, (out_factor, in_factor)), _ = partial_tucker(kernel, rank=[r_out, r_in], modes=[0, 1], init="svd")
    layers = tucker_structure(conv, r_in, r_out)
    as_weight = {"device": conv.weight.device, "dtype": conv.weight.dtype}
    with torch.no_grad():
        layers[0].weight.copy_(torch.as_tensor(in_factor.T[:, :, None, None], **as_weight))
        layers[1].weight.copy_(torch.as_tensor(core, **as_weight))
        layers[2].weight.copy_(torch.as_tensor(out_factor[:, :, None, None], **as_weight))
        if conv.bias is not None:
            layers[2].bias.copy_(conv.bias)
    return layers


@register_technique("factorize.tucker", TuckerConfig,
                    applies_to=having(is_dense_conv, "Conv2d layers with groups=1"),
                    claims=("params", "macs", "size_bytes"))
def factorize_tucker(model: nn.Module, cfg: TuckerConfig, ctx: Context) -> nn.Module:
    """Replace Conv2d layers by 1x1, core and 1x1 convolutions (Tucker-2), then fine-tune."""
    def plan(name: str, conv: nn.Conv2d):
        r_in, r_out = tucker_ranks(conv, cfg)
        check_rank(r_in, conv.in_channels, name, "input channels")
        check_rank(r_out, conv.out_channels, name, "output channels")
        if not worth_factorizing(tucker_params(conv, r_in, r_out), conv.weight.numel()):
            return None  # the factors would hold as many weights as the layer
        return tucker2_conv(conv, r_in, r_out), {"kind": "factorize.tucker", "ranks": [r_in, r_out]}

    layers = select_layers(model, cfg, is_dense_conv, "Conv2d layers with groups=1")
    return factorize_layers(model, cfg, ctx, layers, plan)


@register_edit("factorize.tucker")
def replay_tucker(model: nn.Module, edit: dict) -> None:
    """Rebuild a recorded Tucker-2 factorization's structure (weights are loaded afterwards)."""
    conv = layer_to_replay(model, edit, nn.Conv2d)
    r_in, r_out = (int(rank) for rank in edit["ranks"])
    if not (1 <= r_in <= conv.in_channels and 1 <= r_out <= conv.out_channels and is_dense_conv(conv)):
        raise ValueError(f"ranks {edit['ranks']} do not fit layer {edit['layer']!r}")
    replace_layer(model, edit["layer"], tucker_structure(conv, r_in, r_out))
