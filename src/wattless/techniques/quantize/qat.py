"""Quantization-aware training: fine-tune with quantized weights in the forward pass, then freeze the codes.

``ste`` keeps full-precision weights that the optimizer updates while every forward pass uses their
symmetric uniform quantization, gradients passing straight through the rounding (Jacob et al., CVPR
2018); ``lsq`` also learns the step size (Esser et al., ICLR 2020). With ``activations`` every layer input
is fake-quantized too, on a range calibrated by min-max and tracked as a moving average while training.
After training the weights are frozen into :class:`~wattless.packed.AffineWeight` codes, so the model
file stores ``bits``-bit codes and computes exactly what was trained.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from pydantic import AliasChoices, Field
from torch import nn
from torch.nn.utils import parametrize

from ...train import LearningRateValue
from .._registry import Context, TechniqueConfig, finetune, register_technique
from ._fake import FakeQuantWeight, UniformWeight, freeze_fake_quantizers
from ._layers import QUANTIZABLE_LAYERS, quantizable_layers
from .activations import attach_input_quantizers

ACTIVATION_CALIBRATION_SAMPLES = 512
"""Training rows that set the initial activation ranges."""
ACTIVATION_MOMENTUM = 0.1
"""Weight of each training batch in the moving average of activation ranges."""


class QATConfig(TechniqueConfig):
    bits: int = Field(4, ge=2, le=8, description="weight bits")
    method: Literal["ste", "lsq"] = Field("lsq", description="fixed max-based step (ste) or learned step (lsq)")
    activations: bool = Field(False, description="fake-quantize layer inputs too")
    act_bits: int = Field(8, ge=2, le=16, description="activation bits when activations=true")
    finetune_epochs: int = Field(3, ge=0, le=1000, validation_alias=AliasChoices("finetune_epochs", "epochs"),
                                 description="quantization-aware fine-tuning epochs (``epochs`` is accepted too)")
    lr: LearningRateValue = Field(1e-3, description="fine-tuning learning rate")
    granularity: Literal["tensor", "channel"] = "channel"


def train_and_freeze(model: nn.Module, layers: list[tuple[str, nn.Module]],
                     quantizer_for: Callable[[torch.Tensor], FakeQuantWeight], *, finetune_epochs: int, lr: float,
                     ctx: Context, act_bits: int | None = None) -> nn.Module:
    """Put ``quantizer_for(weight)`` on every layer's weight (and, with ``act_bits``, a tracked quantizer on its
    input), fine-tune with :func:`wattless.train.fit`, then freeze the weights into their packed codes."""
    for _, layer in layers:
        parametrize.register_parametrization(layer, "weight", quantizer_for(layer.weight))
    if act_bits is not None:
        attach_input_quantizers(model, layers, ctx.dataset.X_train[:ACTIVATION_CALIBRATION_SAMPLES], bits=act_bits,
                                momentum=ACTIVATION_MOMENTUM)
    finetune(model, ctx, finetune_epochs, lr)
    freeze_fake_quantizers(model)
    return model.eval()


@register_technique("quantize.qat", QATConfig, applies_to=QUANTIZABLE_LAYERS,
                    claims=("weight_bits", "size_bytes"))
def quantize_qat(model: nn.Module, cfg: QATConfig, ctx: Context) -> nn.Module:
    """Quantization-aware training (STE or learned step size), weights frozen to `bits`-bit codes."""
    return train_and_freeze(
        model, quantizable_layers(model),
        lambda weight: UniformWeight(weight, cfg.bits, learned_step=cfg.method == "lsq",
                                     per_channel=cfg.granularity == "channel"),
        finetune_epochs=cfg.finetune_epochs, lr=cfg.lr, ctx=ctx, act_bits=cfg.act_bits if cfg.activations else None)
