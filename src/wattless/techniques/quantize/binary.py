"""Binary and ternary weights, trained with quantization-aware training and stored as 1- and 2-bit codes.

``quantize.binary``: BinaryConnect sign weights (Courbariaux et al., NeurIPS 2015) with a per-output-channel
scale ``alpha = mean|w|`` (XNOR-Net, Rastegari et al., ECCV 2016). ``quantize.ternary``: Ternary Weight
Networks (Li et al., 2016), weights in ``{-alpha, 0, alpha}`` per output channel.
"""

from __future__ import annotations

from pydantic import AliasChoices, Field
from torch import nn

from ...train import LearningRateValue
from .._registry import Context, TechniqueConfig, register_technique
from ._fake import BinaryWeight, TernaryWeight
from ._layers import QUANTIZABLE_LAYERS, quantizable_layers
from .qat import train_and_freeze


class LowBitConfig(TechniqueConfig):
    finetune_epochs: int = Field(3, ge=0, le=1000, validation_alias=AliasChoices("finetune_epochs", "epochs"),
                                 description="quantization-aware fine-tuning epochs (``epochs`` is accepted too)")
    lr: LearningRateValue = Field(1e-3, description="fine-tuning learning rate (small data sets: try 1e-2, so that "
                                  "latent weights cross zero within few steps)")


@register_technique("quantize.binary", LowBitConfig, applies_to=QUANTIZABLE_LAYERS,
                    claims=("weight_bits", "size_bytes"))
def quantize_binary(model: nn.Module, cfg: LowBitConfig, ctx: Context) -> nn.Module:
    """Binary weights ±alpha per output channel (BinaryConnect/XNOR-Net), trained with QAT, 1-bit codes."""
    return train_and_freeze(model, quantizable_layers(model), lambda weight: BinaryWeight(),
                            finetune_epochs=cfg.finetune_epochs, lr=cfg.lr, ctx=ctx)


@register_technique("quantize.ternary", LowBitConfig, applies_to=QUANTIZABLE_LAYERS,
                    claims=("weight_bits", "size_bytes"))
def quantize_ternary(model: nn.Module, cfg: LowBitConfig, ctx: Context) -> nn.Module:
    """Ternary weights {-alpha, 0, alpha} per output channel (TWN), trained with QAT, 2-bit codes."""
    return train_and_freeze(model, quantizable_layers(model), lambda weight: TernaryWeight(),
                            finetune_epochs=cfg.finetune_epochs, lr=cfg.lr, ctx=ctx)
