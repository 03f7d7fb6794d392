"""Which layers quantization touches, and the checks every quantizer makes before it starts."""

from __future__ import annotations

import torch
from torch import nn

from ...errors import ConfigError, ModelError
from .._registry import layers_of

QUANTIZABLE = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
QUANTIZABLE_LAYERS = layers_of(*QUANTIZABLE, what="Linear or Conv layer")
"""``applies_to`` of the weight quantizers."""
MIN_BITS, MAX_BITS = 1, 16


def quantizable_layers(model: nn.Module, skip: list[str] | tuple[str, ...] = ()) -> list[tuple[str, nn.Module]]:
    """``(name, module)`` of every Linear/Conv layer whose weight gets quantized, minus ``skip``.

    Raises:
        ConfigError: ``skip`` names a layer that does not exist.
        ModelError: a weight holds NaN or infinite values.
    """
    layers = [(name, m) for name, m in model.named_modules() if isinstance(m, QUANTIZABLE)]
    unknown = sorted(set(skip) - {name for name, _ in layers})
    if unknown:
        raise ConfigError(f"skip names unknown layers {unknown}; quantizable layers: {[n for n, _ in layers]}")
    chosen = [(name, m) for name, m in layers if name not in skip]
    for name, module in chosen:
        if not torch.isfinite(module.weight).all():
            raise ModelError(f"layer {name!r} holds NaN or infinite weights; retrain the model before quantizing")
    return chosen


def check_bits(bits: int, what: str = "bits") -> int:
    if not MIN_BITS <= bits <= MAX_BITS:
        raise ConfigError(f"{what}={bits} is out of range; use {MIN_BITS} to {MAX_BITS}")
    return bits
