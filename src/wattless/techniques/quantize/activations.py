"""Activation quantization with calibration: simulated low-bit inference.

Every Linear/Conv layer gets an input fake-quantizer (``layer.input_quant``) whose range is calibrated on
training rows: min-max, a percentile clip, or the clip with the least quantization mean squared error
searched on a grid (MSE range setting: Nagel et al., 2021, "A White Paper on Neural Network Quantization").
Deployment in int8 is ONNX Runtime's job (``wattless export --int8``); this shows what low-bit activations
cost in accuracy.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from pydantic import Field
from torch import nn

from ...errors import DataError
from .._registry import Context, TechniqueConfig, register_technique
from ._fake import ActivationQuantizer, attach_input_quantizer
from ._layers import QUANTIZABLE_LAYERS, quantizable_layers

Calibration = Literal["minmax", "percentile", "mse"]
MAX_CALIBRATION_VALUES = 2**20
"""Activation values per layer that percentile and MSE calibration look at (an even subsample beyond)."""
MSE_CANDIDATES = 100
"""Candidate clip ranges of MSE calibration: 1/100, 2/100, ..., 1 times the min-max range."""


class ActivationQuantConfig(TechniqueConfig):
    bits: int = Field(8, ge=2, le=16, description="bits of every Linear/Conv layer input")
    calibration: Calibration = "minmax"
    percentile: float = Field(99.99, gt=50, le=100, description="percentile calibration: clip at this percentile")
    samples: int = Field(512, ge=0, description="training rows to calibrate on")
    symmetric: bool = Field(False, description="a range symmetric around zero instead of [min, max]")


def _subsample(values: torch.Tensor) -> torch.Tensor:
    flat = values.detach().float().flatten()
    return flat[:: -(-flat.numel() // MAX_CALIBRATION_VALUES)] if flat.numel() > MAX_CALIBRATION_VALUES else flat


def mse_range(values: torch.Tensor, bits: int, symmetric: bool = False) -> tuple[float, float]:
    """The clip range, among fractions 1/100..1 of the min-max range, with the least quantization MSE
    (ties go to the wider range)."""
    low, high = float(values.min()), float(values.max())
    quantizer = ActivationQuantizer(bits, symmetric=symmetric)
    scored = []
    with torch.no_grad():
        for fraction in torch.linspace(1.0 / MSE_CANDIDATES, 1.0, MSE_CANDIDATES).tolist():
            quantizer.set_range(low * fraction, high * fraction)
            scored.append((float((quantizer(values) - values).pow(2).mean()), -fraction))
    fraction = -min(scored)[1]
    return low * fraction, high * fraction


def calibration_range(values: torch.Tensor, method: Calibration, bits: int, *, percentile: float = 99.99,
                      symmetric: bool = False) -> tuple[float, float]:
    """``(low, high)`` clip range of a set of activations by ``method`` (before widening to hold zero)."""
    if method == "minmax":
        return float(values.min()), float(values.max())
    flat = _subsample(values)
    if method == "percentile":
        low, high = torch.quantile(flat, torch.tensor([1 - percentile / 100, percentile / 100])).tolist()
        return low, high
    return mse_range(flat, bits, symmetric)


def attach_input_quantizers(model: nn.Module, layers: list[tuple[str, nn.Module]], X: np.ndarray, *, bits: int,
                            calibration: Calibration = "minmax", percentile: float = 99.99, symmetric: bool = False,
                            momentum: float | None = None) -> None:
    """Calibrate the input range of every layer in ``layers`` on rows ``X`` (one forward pass in eval mode,
    full-precision activations), then attach an :class:`ActivationQuantizer` to each.

    Raises:
        DataError: ``X`` holds no rows.
    """
    if len(X) == 0:
        raise DataError("activation quantization needs calibration rows, got none; set samples >= 1 and "
                        "use a data set with training rows")
    ranges: dict[str, tuple[float, float]] = {}

    def recorder(name: str):
        def record(layer: nn.Module, args: tuple) -> None:
            ranges[name] = calibration_range(args[0], calibration, bits, percentile=percentile, symmetric=symmetric)
        return record

    handles = [layer.register_forward_pre_hook(recorder(name), prepend=True) for name, layer in layers]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.as_tensor(X))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    for name, layer in layers:
        if name in ranges:  # a layer the forward pass never calls keeps full-precision inputs
            quantizer = ActivationQuantizer(bits, symmetric=symmetric, momentum=momentum)
            quantizer.set_range(*ranges[name])
            attach_input_quantizer(layer, quantizer)


@register_technique("quantize.activations", ActivationQuantConfig, applies_to=QUANTIZABLE_LAYERS,
                    claims=("bops",))
def quantize_activations(model: nn.Module, cfg: ActivationQuantConfig, ctx: Context) -> nn.Module:
    """Fake-quantize every Linear/Conv input to `bits` on a range calibrated on training rows."""
    attach_input_quantizers(model, quantizable_layers(model), ctx.dataset.X_train[:cfg.samples], bits=cfg.bits,
                            calibration=cfg.calibration, percentile=cfg.percentile, symmetric=cfg.symmetric)
    return model
