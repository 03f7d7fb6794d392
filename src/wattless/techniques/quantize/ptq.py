"""Post-training weight quantization (``quantize.ptq``): every Linear/Conv weight rounded onto 2^bits values.

Methods (issue 4): ``midrise``, the uniform mid-rise quantizer (2^bits bins over the range, each weight
to its bin centre); ``nearest`` and ``stochastic`` rounding (unbiased, Gupta et al. 2015) onto a landmark
set that is ``uniform`` (2^bits evenly spaced values including both range ends), ``histogram``
(density-following, quantiles refined by Lloyd-Max) or ``normal`` (quantiles of a fitted normal prior).
Each weight becomes a :class:`~wattless.packed.PackedWeight` parametrization, so evaluation runs the
quantized weights and the model file stores ``bits``-wide codes. Biases stay float; no fine-tuning.

``channel_bits`` gives a layer one width per output channel (rows of the uniform per-channel grid, each at
its own width; stored as a :class:`~wattless.packed.RowAffineWeight`), which ``quantize.mixed`` with
``unit=channel`` fills in.
"""

from __future__ import annotations

from typing import Annotated, Literal

import torch
from pydantic import ConfigDict, Field, model_validator
from torch import nn
from torch.nn.utils import parametrize

from ...errors import ConfigError, ModelError
from ...packed import AffineWeight, CodebookWeight, PackedWeight, RowAffineWeight
from .._registry import Context, TechniqueConfig, register_technique
from ._grids import (
    histogram_landmarks,
    midrise,
    normal_landmarks,
    round_nearest,
    round_stochastic,
    uniform_landmarks,
    uniform_step,
    value_range,
)
from ._layers import MAX_BITS, MIN_BITS, QUANTIZABLE, QUANTIZABLE_LAYERS, quantizable_layers

Bits = Annotated[int, Field(ge=MIN_BITS, le=MAX_BITS)]


class PTQConfig(TechniqueConfig):
    """Bits, rounding method, landmark set and grouping of post-training weight quantization."""

    # nn.Sequential layers are named "0", "1", ..., which YAML and --step read as numbers
    model_config = ConfigDict(coerce_numbers_to_str=True)

    bits: Bits = Field(8, description="bits per weight code: at most 2^bits distinct values per tensor or channel")
    method: Literal["midrise", "nearest", "stochastic"] = "nearest"
    landmarks: Literal["uniform", "histogram", "normal"] = Field(
        "uniform", description="landmark set of nearest/stochastic rounding; midrise ignores it")
    granularity: Literal["tensor", "channel"] = Field(
        "channel", description="one range or landmark set per tensor, or per output channel (dim 0)")
    symmetric: bool = Field(True, description="range [-max|w|, max|w|] instead of [min w, max w] "
                                              "(midrise and uniform; histogram and normal follow the weights)")
    layer_bits: dict[str, Bits] = Field(default_factory=dict, description="bits per layer name, overriding bits")
    channel_bits: dict[str, list[Bits]] = Field(
        default_factory=dict, description="bits per output channel of a layer (one width per row), overriding bits; "
        "nearest or midrise rounding on the uniform per-channel grid only")
    skip: list[str] = Field(default_factory=list, description="layer names left in float")

    @model_validator(mode="after")
    def _channel_bits_need_a_uniform_channel_grid(self) -> PTQConfig:
        if not self.channel_bits:
            return self
        if self.method == "stochastic" or (self.method == "nearest" and self.landmarks != "uniform"):
            raise ValueError(f"channel_bits works with method=nearest,landmarks=uniform or method=midrise, not "
                             f"method={self.method},landmarks={self.landmarks}; use one of those, or layer_bits")
        if self.granularity != "channel":
            raise ValueError("channel_bits needs granularity=channel (one grid per output channel); set it, "
                             "or use layer_bits")
        return self


def _check_layer_names(model: nn.Module, cfg: PTQConfig) -> None:
    names = [name for name, m in model.named_modules() if isinstance(m, QUANTIZABLE)]
    unknown = sorted(set(cfg.layer_bits) - set(names))
    if unknown:
        raise ConfigError(f"layer_bits names unknown layers {unknown}; quantizable layers: {names}")
    unknown = sorted(set(cfg.channel_bits) - set(names))
    if unknown:
        raise ConfigError(f"channel_bits names unknown layers {unknown}; quantizable layers: {names}")
    for first, second in (("skip", "layer_bits"), ("skip", "channel_bits"), ("layer_bits", "channel_bits")):
        both = sorted(set(getattr(cfg, first)) & set(getattr(cfg, second)))
        if both:
            raise ConfigError(f"layers {both} are in both {first} and {second}; remove them from one of the two")
    modules = dict(model.named_modules())
    for name, widths in cfg.channel_bits.items():
        channels = modules[name].weight.shape[0]
        if len(widths) != channels:
            raise ConfigError(f"channel_bits gives layer {name!r} {len(widths)} widths; give one per output "
                              f"channel ({channels})")


def _check_enough_distinct(name: str, weight: torch.Tensor, bits: int, landmarks: str) -> None:
    """Histogram and normal landmark sets of 2^bits values need at least as many distinct weights."""
    distinct = torch.unique(weight).numel()
    if distinct < 2**bits:
        fitting = max(distinct.bit_length() - 1, 0)
        fix = f"use at most {fitting} bits for it (layer_bits)" if fitting else "skip it"
        raise ModelError(f"layer {name!r} has {distinct} distinct weights, fewer than the {2**bits} {landmarks} "
                         f"landmarks of {bits} bits; {fix}, or use landmarks=uniform")


def quantize_weight(weight: torch.Tensor, bits: int, cfg: PTQConfig, generator: torch.Generator) -> PackedWeight:
    """The packed form of one weight tensor: its codes at ``bits`` plus scales (midrise, uniform) or a
    codebook (histogram, normal), one per tensor or per output channel as ``cfg.granularity`` says."""
    per_channel = cfg.granularity == "channel"
    rows = weight.detach().float().reshape(weight.shape[0] if per_channel else 1, -1)  # (C, N)

    def per_group(values: torch.Tensor) -> torch.Tensor:  # (C, ...) -> (C, ...) per channel, (...) per tensor
        return values if per_channel else values[0]

    if cfg.method == "midrise":
        lo, hi = value_range(rows, cfg.symmetric)
        codes, width, offset = midrise(rows, lo, hi, bits)
        return AffineWeight(codes.reshape(weight.shape), bits, per_group(width), per_group(offset))
    if cfg.landmarks == "uniform":
        lo, hi = value_range(rows, cfg.symmetric)
        landmarks = uniform_landmarks(lo, hi, bits)
    elif cfg.landmarks == "histogram":
        landmarks = histogram_landmarks(rows, 2**bits)
    else:
        landmarks = normal_landmarks(rows, 2**bits)
    if cfg.method == "nearest":
        codes = round_nearest(rows, landmarks)
    else:
        codes = round_stochastic(rows, landmarks, generator)
    codes = codes.reshape(weight.shape)
    if cfg.landmarks == "uniform":
        return AffineWeight(codes, bits, per_group(uniform_step(lo, hi, bits)), per_group(lo))
    return CodebookWeight(codes, bits, per_group(landmarks))


def quantize_rows(weight: torch.Tensor, row_bits: list[int], cfg: PTQConfig) -> RowAffineWeight:
    """Each output channel ``c`` at its own width ``row_bits[c]``: the rows of each width are quantized
    together exactly as the per-channel path quantizes them at that width (same range, grid and codes)."""
    device = weight.device
    widths = torch.tensor(row_bits, dtype=torch.long, device=device)
    codes = torch.empty(weight.shape, dtype=torch.int32, device=device)
    scale, offset = torch.empty(weight.shape[0], device=device), torch.empty(weight.shape[0], device=device)
    unused = torch.Generator()  # nearest and midrise draw nothing
    for bits in sorted(set(row_bits)):
        rows = widths == bits
        part = quantize_weight(weight.detach()[rows], bits, cfg, unused)
        codes[rows], scale[rows], offset[rows] = part.codes, part.scale, part.offset
    return RowAffineWeight(codes, widths, scale, offset)


@register_technique("quantize.ptq", PTQConfig, applies_to=QUANTIZABLE_LAYERS,
                    claims=("weight_bits", "size_bytes"))
def quantize_ptq(model: nn.Module, cfg: PTQConfig, ctx: Context) -> nn.Module:
    """Round every Linear/Conv weight onto 2^bits values (midrise grid or landmark set), no retraining."""
    _check_layer_names(model, cfg)
    layers = quantizable_layers(model, cfg.skip)
    if cfg.method != "midrise" and cfg.landmarks != "uniform":
        for name, layer in layers:
            _check_enough_distinct(name, layer.weight, cfg.layer_bits.get(name, cfg.bits), cfg.landmarks)
    generator = torch.Generator().manual_seed(ctx.seed)  # stochastic rounding: same seed, same codes
    for name, layer in layers:
        if name in cfg.channel_bits:
            packed = quantize_rows(layer.weight, cfg.channel_bits[name], cfg)
        else:
            packed = quantize_weight(layer.weight, cfg.layer_bits.get(name, cfg.bits), cfg, generator)
        # Last in the chain, on top of any earlier parametrization (a pruning mask): it decodes the quantized
        # weight on its own. Grids without a zero level (symmetric uniform, midrise) do not keep masked zeros.
        parametrize.register_parametrization(layer, "weight", packed)
    return model
