"""Learned bit widths (``quantize.learned_bits``): quantization-aware training that learns each layer's bit width
under a size penalty, then stores every layer at the width it learned.

Each layer's weight is quantized onto the symmetric uniform grid ``{-L .. L} * d`` as
``d * round(clamp(w / d, -r, r))`` with two learned parameters per layer: the step ``d`` and the range
``r = q_max / d`` in steps. This is Uhlich et al.'s parametrization by step size and dynamic range (ICLR 2020,
"Mixed Precision DNNs: All you need is a good parametrization"), whose gradients are better conditioned than
those of the bit width itself: the task loss pulls ``r`` up through the weights it clips and moves ``d`` as in
LSQ (Esser et al., ICLR 2020), while the penalty pulls the bit width ``b = log2(2 r + 1)`` (the grid's levels,
``L = round(r)``) down. Both are stored as logarithms: Adam moves a parameter by about ``lr`` a step, so a
logarithm moves the step or range by a fraction of itself, whatever the layer's scale (times ``GAIN``).

Two phases:

1. ``learn_epochs`` with ``loss = task loss + penalty * max(0, mean bits - target_bits)``, the mean weighted by
   each layer's non-zero weights (a pruned weight costs no code): the widths settle where the task needs them,
   on average at the target. ``r`` stays within ``[1, 2**(max_bits - 1) - 1]`` (ternary to ``max_bits``).
2. The widths are fixed (``L = round(r)``) and ``finetune_epochs`` fine-tune the steps and weights with the task
   loss alone; the epoch with the best validation accuracy is kept (every epoch has the same widths).

A pruned weight (one exactly zero when the step starts, as a loaded pruned model has them) stays exactly zero
and gets no gradient. The frozen layer is a
:class:`~wattless.packed.CodebookWeight` whose codes interleave the levels (``0, d, -d, 2d, -2d, ...``), so code 0
is the zero weight, the pruned positions are the entropy coder's mask, and the codebook entries are the very
float32 products the training computed: the frozen model computes exactly what was trained. Biases stay float
unless ``bias_bits`` is given (as ``share.kmeans``).
"""

from __future__ import annotations

import math

import torch
from pydantic import Field, model_validator
from torch import nn
from torch.nn.utils import parametrize

from ...packed import CodebookWeight
from ...train import LearningRateValue, task_loss
from .._registry import Context, TechniqueConfig, finetune, register_technique
from ..distill.hinton import distillation_loss, teacher_outputs
from ..share import quantized_bias
from ._fake import TINY, FakeQuantWeight, freeze_fake_quantizers, round_ste
from ._layers import QUANTIZABLE_LAYERS, quantizable_layers

GAIN = 10.0
"""Scale of the logarithm parameters: with Adam at lr 1e-3 the step or range moves about 1% a training step."""


class LearnedBitsConfig(TechniqueConfig):
    """Learned per-layer bit widths with a size penalty. Defaults: the best of the trials on LeNet-300-100 pruned by
    ``prune.sensitivity`` (Fashion-MNIST validation drops, listed in the recipe ``deep-compression-learned-bits``):
    lr 3e-4 and 6 fine-tuning epochs beat 1e-3 and 2; a 2-bit target gave the smallest file within half a point.
    Not measured on unpruned models, where every weight pays for its code: raise ``target_bits`` there."""

    target_bits: float = Field(2.0, ge=1.58, le=16.0, description="mean bits per non-zero weight (log2 of the "
                               "levels of each layer's grid, weighted by its non-zero weights) the penalty allows")
    penalty: float = Field(1.0, ge=0.0, le=1e6, description="task-loss units per bit of the mean above target_bits")
    init_bits: float = Field(4.0, ge=1.58, le=16.0, description="every layer's width before learning: "
                             "log2(2 r + 1)")
    max_bits: int = Field(8, ge=2, le=16, description="widest grid a layer may learn: 2**max_bits - 1 levels")
    learn_epochs: int = Field(4, ge=1, le=1000, description="epochs learning the widths with the penalty")
    finetune_epochs: int = Field(6, ge=0, le=1000, description="epochs fine-tuning at the fixed widths")
    lr: LearningRateValue = Field(3e-4, description="learning rate of both phases")
    distill_alpha: float = Field(0.0, ge=0.0, le=1.0, description="weight of the unquantized model's soft targets "
                                 "in the loss (0: labels only)")
    temperature: float = Field(2.0, gt=0.0, le=100.0, description="soft-target temperature (with distill_alpha)")
    bias_bits: int | None = Field(None, ge=2, le=16, description="store biases as codes of this many bits on a "
                                  "uniform grid from min to max (None: float32 biases)")

    @model_validator(mode="after")
    def _widths_fit(self) -> LearnedBitsConfig:
        widest = math.log2(2**self.max_bits - 1)
        for name in ("target_bits", "init_bits"):
            if getattr(self, name) > widest:
                raise ValueError(f"{name}={getattr(self, name)} is above what max_bits={self.max_bits} allows "
                                 f"({widest:.2f}); raise max_bits or lower {name}")
        return self


def bits_of_range(steps: torch.Tensor) -> torch.Tensor:
    """Bits of a symmetric grid reaching ``steps`` steps each side: ``log2(2 steps + 1)`` (continuous)."""
    return torch.log2(2 * steps + 1)


def interleaved_levels(count: int) -> torch.Tensor:
    """The grid levels in code order for codes ``0 .. count - 1``: ``0, 1, -1, 2, -2, ...`` (float32)."""
    codes = torch.arange(count)
    return torch.where(codes % 2 == 1, (codes + 1) // 2, -(codes // 2)).float()


def codes_of_levels(levels: torch.Tensor) -> torch.Tensor:
    """The codes of integer-valued ``levels`` under :func:`interleaved_levels` (int32)."""
    levels = levels.round().to(torch.int64)
    return torch.where(levels > 0, 2 * levels - 1, -2 * levels).to(torch.int32)


class LearnedWidthWeight(FakeQuantWeight):
    """``d * round(clamp(w / d, -r, r))`` with learned ``log d`` and ``log r`` (see the module docstring); after
    :meth:`fix_width`, ``r`` is the integer ``L`` and only ``d`` learns."""

    def __init__(self, weight: torch.Tensor, init_bits: float, max_bits: int):
        super().__init__()
        self.max_steps = 2 ** (max_bits - 1) - 1
        steps = min((2**init_bits - 1) / 2, self.max_steps)
        alive = weight.detach()[weight.detach() != 0].abs()
        magnitude = float(alive.mean()) if alive.numel() else 1.0
        step = max(2 * magnitude / math.sqrt(steps), TINY)  # LSQ's initial step
        self.log_step = nn.Parameter(torch.tensor(math.log(step) / GAIN))
        self.log_steps = nn.Parameter(torch.tensor(math.log(steps) / GAIN))
        self.fixed_steps: int | None = None
        self.register_buffer("kept", weight.detach() != 0)  # a pruned weight (exactly 0) stays 0 while training

    def step(self) -> torch.Tensor:
        return torch.exp(self.log_step * GAIN).clamp_min(TINY)

    def steps(self) -> torch.Tensor:
        """``r``: the grid's reach in steps each side (fixed to an integer by :meth:`fix_width`)."""
        if self.fixed_steps is not None:
            return torch.tensor(float(self.fixed_steps))
        return torch.exp(self.log_steps * GAIN)

    def learned_bits(self) -> torch.Tensor:
        """The width the penalty sees, differentiable: ``log2(2 r + 1)``."""
        return bits_of_range(self.steps())

    def project(self) -> None:
        """Keep ``r`` within ternary (1) to ``max_bits`` (after every optimizer step)."""
        with torch.no_grad():
            self.log_steps.clamp_(0.0, math.log(self.max_steps) / GAIN)

    def fix_width(self) -> None:
        """Stop learning the width: ``r`` becomes the integer number of levels each side it rounds to."""
        self.fixed_steps = self.whole_steps()
        self.log_steps.requires_grad_(False)

    def whole_steps(self) -> int:
        """``L``: the largest level the grid reaches now, ``round(r)`` within 1 and the widest grid."""
        return int(min(max(round(float(self.steps().detach())), 1), self.max_steps))

    @property
    def levels(self) -> int:
        """Grid values the weights can take: ``2 L + 1``."""
        return 2 * self.whole_steps() + 1

    @property
    def bits(self) -> int:  # the codes' packed width
        return max(1, math.ceil(math.log2(self.levels)))

    def quantized_levels(self, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(levels, d)``: integer-valued float levels in ``[-L, L]`` and the step."""
        step, steps = self.step(), self.steps()
        scaled = weight * self.kept / step
        return round_ste(torch.minimum(torch.maximum(scaled, -steps), steps)), step

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        levels, step = self.quantized_levels(weight)
        return levels * step

    def frozen(self, weight: torch.Tensor) -> CodebookWeight:
        """The codes (interleaved levels) and a codebook of ``level * d``, exactly the training's products."""
        with torch.no_grad():
            levels, step = self.quantized_levels(weight)
            codebook = interleaved_levels(self.levels) * step
        return CodebookWeight(codes_of_levels(levels), self.bits, codebook)


def size_penalty(quantizers: list[LearnedWidthWeight], counts: list[int], cfg: LearnedBitsConfig) -> torch.Tensor:
    """``penalty * max(0, mean bits - target)``, the mean over the layers weighted by ``counts`` (non-zero weights)."""
    total = sum(counts)
    mean = sum(count * quantizer.learned_bits() for quantizer, count in zip(quantizers, counts, strict=True)) / total
    return cfg.penalty * torch.relu(mean - cfg.target_bits)


@register_technique("quantize.learned_bits", LearnedBitsConfig, applies_to=QUANTIZABLE_LAYERS,
                    claims=("weight_bits", "size_bytes"))
def quantize_learned_bits(model: nn.Module, cfg: LearnedBitsConfig, ctx: Context) -> nn.Module:
    """Learn each layer's bit width under a size penalty, fine-tune at those widths, store the codes."""
    layers = quantizable_layers(model)
    data = ctx.dataset
    labels_loss = (distillation_loss(teacher_outputs(model, data), data, cfg.temperature, cfg.distill_alpha)
                   if cfg.distill_alpha else task_loss(data))
    counts = [max(int(torch.count_nonzero(layer.weight)), 1) for _, layer in layers]
    quantizers = []
    for _, layer in layers:
        quantizer = LearnedWidthWeight(layer.weight, cfg.init_bits, cfg.max_bits)
        parametrize.register_parametrization(layer, "weight", quantizer)
        quantizers.append(quantizer)

    def penalized(outputs: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        return labels_loss(outputs, idx) + size_penalty(quantizers, counts, cfg)

    def project(_step: int) -> None:
        for quantizer in quantizers:
            quantizer.project()

    # every epoch changes the widths: keep the last one, not the best-scoring (widest) one
    finetune(model, ctx, cfg.learn_epochs, cfg.lr, loss=penalized, on_step=project, best_from_epoch=cfg.learn_epochs)
    for quantizer in quantizers:
        quantizer.fix_width()
    finetune(model, ctx, cfg.finetune_epochs, cfg.lr, loss=labels_loss)
    freeze_fake_quantizers(model)
    if cfg.bias_bits is not None:
        for _, layer in layers:
            if getattr(layer, "bias", None) is not None:
                parametrize.register_parametrization(layer, "bias", quantized_bias(layer.bias, cfg.bias_bits))
    return model.eval()

