"""Fake quantization: the training-time weight quantizers of QAT, binary and ternary weights, and the
activation quantizer used for simulated low-bit inference.

Every weight quantizer is a parametrization computing ``w = codes * scale + offset`` exactly as the
:class:`~wattless.packed.AffineWeight` it freezes into does, so the frozen model computes bit for bit
what was trained. Gradients use the straight-through estimator (Bengio et al., 2013, "Estimating or
Propagating Gradients Through Stochastic Neurons").
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils import parametrize

from ...packed import AffineWeight, channel_view
from ...structure import register_attachment

TINY = 1e-12
"""Smallest step size: keeps all-zero channels and constant activations finite."""
INPUT_QUANT = "input_quant"
"""Attribute name of a layer's input quantizer; its buffers appear in the state dict under it."""


def straight_through(hard: torch.Tensor, surrogate: torch.Tensor) -> torch.Tensor:
    """``hard`` in the forward pass, the gradient of ``surrogate`` in the backward pass.

    The value is ``hard + 0`` exactly, so training and the frozen model see identical numbers.
    """
    if not (surrogate.requires_grad and torch.is_grad_enabled()):
        return hard
    return hard + (surrogate - surrogate.detach())


def round_ste(x: torch.Tensor) -> torch.Tensor:
    """Round to the nearest integer (ties to even), passing the gradient through unchanged."""
    return straight_through(x.round(), x)


def channel_mean(values: torch.Tensor, per_channel: bool = True) -> torch.Tensor:
    """Mean over each output channel (C,), or over the whole tensor (a scalar)."""
    return values.flatten(1).mean(1) if per_channel else values.mean()


class FakeQuantWeight(nn.Module):
    """Base of the training-time weight parametrizations: subclasses give ``affine(weight)`` as
    ``(codes, scale, offset)`` with integer-valued float codes in ``[0, 2**bits)``."""

    bits: int

    def affine(self, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        codes, scale, offset = self.affine(weight)
        return codes * channel_view(scale, weight.dim()) + channel_view(offset, weight.dim())

    def frozen(self, weight: torch.Tensor) -> AffineWeight:
        """The packed weight holding exactly the codes, scale and offset this quantizer computes."""
        with torch.no_grad():
            codes, scale, offset = self.affine(weight)
        return AffineWeight(codes.to(torch.int32), self.bits, scale.detach(), offset.detach())


class UniformWeight(FakeQuantWeight):
    """Symmetric uniform quantization ``s * round(clip(w / s, -qn, qp))``, per tensor or per output channel.

    Without a learned step (plain STE, as in Jacob et al., CVPR 2018) ``s = max|w| / qp`` is recomputed
    every step on the grid ``-qp..qp`` (``2**bits - 1`` levels, zero exact, the largest weight kept).
    With a learned step (LSQ: Esser et al., ICLR 2020, "Learned Step Size Quantization") the grid is
    ``-2**(bits-1)..2**(bits-1)-1``, ``s`` starts at ``2 mean|w| / sqrt(qp)`` and its gradient is scaled
    by ``1 / sqrt(n * qp)``, ``n`` the number of weights sharing it; the gradient of ``w`` is zero where
    ``w`` is clipped.
    """

    def __init__(self, weight: torch.Tensor, bits: int, *, learned_step: bool, per_channel: bool):
        super().__init__()
        self.bits = bits
        self.per_channel = per_channel
        self.qp = 2 ** (bits - 1) - 1
        self.qn = 2 ** (bits - 1) if learned_step else self.qp
        self.step: nn.Parameter | None = None
        if learned_step:
            magnitude = channel_mean(weight.detach().abs(), per_channel)
            self.step = nn.Parameter((2 * magnitude / math.sqrt(self.qp)).clamp_min(TINY))
            shared = weight[0].numel() if per_channel else weight.numel()
            self.grad_scale = 1.0 / math.sqrt(shared * self.qp)

    def step_size(self, weight: torch.Tensor) -> torch.Tensor:
        if self.step is None:
            largest = weight.detach().abs().flatten(1).amax(1) if self.per_channel else weight.detach().abs().max()
            return (largest / self.qp).clamp_min(TINY)
        return straight_through(self.step.detach(), self.step * self.grad_scale).clamp_min(TINY)

    def affine(self, weight):
        step = self.step_size(weight)
        scaled = weight / channel_view(step, weight.dim())
        if self.step is None:  # nothing lies beyond max|w|: the clamp only catches rounding noise, keep its gradient
            levels = straight_through(scaled.round().clamp(-self.qn, self.qp), scaled)
        else:
            levels = round_ste(scaled.clamp(-self.qn, self.qp))
        return levels + self.qn, step, -self.qn * step


class BinaryWeight(FakeQuantWeight):
    """BinaryConnect sign weights (Courbariaux et al., NeurIPS 2015) scaled per output channel by
    ``alpha = mean|w|`` (XNOR-Net, Rastegari et al., ECCV 2016): codes {0, 1}, ``w = code * 2 alpha - alpha``.

    The gradient is XNOR-Net's: through ``alpha`` and through the sign, cancelled where ``|w| > 1``.
    """

    bits = 1

    def affine(self, weight):
        alpha = channel_mean(weight.abs())
        codes = straight_through((weight >= 0).to(weight.dtype), weight.clamp(-1, 1) / 2)
        return codes, 2 * alpha, -alpha


class TernaryWeight(FakeQuantWeight):
    """Ternary Weight Networks (Li et al., 2016): per output channel ``delta = 0.7 mean|w|``, weights in
    ``{-alpha, 0, alpha}`` with ``alpha`` the mean of ``|w|`` above ``delta``; codes {0, 1, 2}, ``w = code *
    alpha - alpha``. The gradient passes straight through to the full-precision weight."""

    bits = 2

    def affine(self, weight):
        magnitude = weight.detach().abs()
        delta = channel_view(0.7 * channel_mean(magnitude), weight.dim())
        above = (magnitude > delta).to(weight.dtype)
        alpha = (magnitude * above).flatten(1).sum(1) / above.flatten(1).sum(1).clamp_min(1)
        signs = (weight.detach() > delta).to(weight.dtype) - (weight.detach() < -delta).to(weight.dtype)
        codes = straight_through(signs + 1, weight / channel_view(alpha.clamp_min(TINY), weight.dim()))
        return codes, alpha, -alpha


class ActivationQuantizer(nn.Module):
    """Fake-quantizes a tensor onto ``2**bits`` levels: ``x -> (clamp(round(x / s) + z, 0, 2**bits - 1) - z) * s``.

    ``scale`` (s), ``zero_point`` (z) and ``bits`` are buffers, so a saved model keeps them. The range is
    set by calibration (:meth:`set_range`); with a ``momentum``, training-mode calls also track it as a
    moving average of batch minima and maxima (Jacob et al., CVPR 2018). The gradient passes straight
    through inside the range and is zero outside it.
    """

    def __init__(self, bits: int = 8, *, symmetric: bool = False, momentum: float | None = None):
        super().__init__()
        self.symmetric = symmetric
        self.momentum = momentum
        self.register_buffer("scale", torch.tensor(1.0))
        self.register_buffer("zero_point", torch.tensor(0.0))
        self.register_buffer("bits", torch.tensor(bits))

    def set_range(self, low: float, high: float) -> None:
        """Cover ``[low, high]``, widened to hold zero; symmetric: ``[-m, m]`` with ``m = max(|low|, |high|)``."""
        levels = 2 ** int(self.bits)
        if self.symmetric:
            scale, zero_point = max(abs(low), abs(high)) / (levels // 2 - 1), levels // 2
        else:
            low, high = min(low, 0.0), max(high, 0.0)
            scale = max((high - low) / (levels - 1), TINY)
            zero_point = min(max(round(-low / scale), 0), levels - 1)
        with torch.no_grad():
            self.scale.fill_(max(scale, TINY))
            self.zero_point.fill_(zero_point)

    def calibrated_range(self) -> tuple[float, float]:
        """The ``(low, high)`` range the grid was set to cover (a symmetric grid, like int8's -128, holds one
        more level below ``low``)."""
        scale, zero_point, levels = float(self.scale), float(self.zero_point), 2 ** int(self.bits)
        if self.symmetric:
            bound = (levels // 2 - 1) * scale
            return -bound, bound
        return -zero_point * scale, (levels - 1 - zero_point) * scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and self.momentum is not None:
            low, high = self.calibrated_range()
            batch = x.detach()
            self.set_range(low + self.momentum * (float(batch.min()) - low),
                           high + self.momentum * (float(batch.max()) - high))
        highest = 2.0 ** self.bits - 1
        codes = torch.clamp(round_ste(x / self.scale) + self.zero_point, 0.0, highest)
        return (codes - self.zero_point) * self.scale


def quantize_layer_input(layer: nn.Module, args: tuple) -> tuple:
    """Forward pre-hook: pass the layer's first input through its ``input_quant``."""
    return (getattr(layer, INPUT_QUANT)(args[0]), *args[1:])


def attach_input_quantizer(layer: nn.Module, quantizer: ActivationQuantizer) -> None:
    """Make ``quantizer`` the layer's ``input_quant`` (replacing one already there) applied to its input."""
    had_one = isinstance(getattr(layer, INPUT_QUANT, None), ActivationQuantizer)
    layer.add_module(INPUT_QUANT, quantizer)
    if not had_one:
        layer.register_forward_pre_hook(quantize_layer_input)


@register_attachment(INPUT_QUANT)
def reattach_activation_quantizers(module: nn.Module, tensors: dict[str, torch.Tensor]) -> None:
    """Before loading a saved state dict: attach an :class:`ActivationQuantizer` to every layer named by a
    ``<layer>.input_quant.scale`` key, so its buffers (including ``bits``) load into it."""
    suffix = f"{INPUT_QUANT}.scale"
    for key in tensors:
        if key == suffix or key.endswith(f".{suffix}"):
            try:
                layer = module.get_submodule(key[: -len(suffix)].rstrip("."))
            except AttributeError:
                continue  # not a layer of this model: the state dict check reports the unexpected key
            attach_input_quantizer(layer, ActivationQuantizer())


def freeze_fake_quantizers(model: nn.Module) -> None:
    """Replace every training-time weight quantizer by the :class:`AffineWeight` of the codes it computes,
    and stop activation range tracking: from here on the model computes what its file stores."""
    for module in model.modules():
        if isinstance(module, ActivationQuantizer):
            module.momentum = None
        if parametrize.is_parametrized(module, "weight"):
            chain = module.parametrizations["weight"]
            if isinstance(chain[-1], FakeQuantWeight):
                with torch.no_grad():
                    weight = chain.original
                    for earlier in list(chain)[:-1]:
                        weight = earlier(weight)
                chain[-1] = chain[-1].frozen(weight)
