"""Learned rounding (``quantize.adaround``): each weight rounds up or down on the ``quantize.ptq`` uniform grid,
whichever reconstructs the layer's outputs on calibration data best.

AdaRound (Nagel et al., ICML 2020, "Up or Down? Adaptive Rounding for Post-Training Quantization") notes that
rounding every weight to its nearest grid value minimises the weight error, not the error of what the layer
computes: the errors of weights that meet the same inputs can cancel. Per layer, in the order the forward pass
calls them, it learns one continuous variable ``V`` per weight through the rectified sigmoid
``h(V) = clip(sigmoid(V) (zeta - gamma) + gamma, 0, 1)`` (zeta = 1.1, gamma = -0.1) and the soft weights
``W_soft = s (floor(w / s) + h(V))`` (``s`` the grid step, offsets left out here), minimising

    mean over calibration rows of sum over output channels of (W_soft x~ - y)^2  +  lambda sum(1 - |2 h(V) - 1|^beta)

with Adam on mini-batches. The regulariser is off for a warm-up, then ``beta`` falls linearly from 20 to 2, which
drives every ``h(V)`` to 0 or 1; the hard codes are ``floor + (h(V) >= 0.5)``. ``V`` starts where ``W_soft = W``,
so zero iterations give nearest rounding. ``x~`` are the layer's inputs as the already quantized earlier layers
compute them; the target ``y`` is the float layer on those inputs (``target=quantized``, the default) or on the
float model's inputs (``target=float``, the paper's asymmetric reconstruction). Both correct for the layers before:
the first by matching the float layer on the inputs it will really see, the second by also aiming past their error.

The grid is exactly ``quantize.ptq``'s ``method=nearest,landmarks=uniform`` grid (2^bits evenly spaced values over
``[-max|w|, max|w|]`` per output channel by default), so the two differ only in the up/down decisions and store
the same :class:`~wattless.packed.AffineWeight` codes at ``bits`` per weight. (An MSE-searched clipping range per
channel was tried on LeNet-300-100 / Fashion-MNIST: it validated better at 2 bits only, worse at 3 and 4, so the
grid stays ptq's.) Biases stay float; nothing else is trained. Cost: ``iterations`` Adam steps per layer, each one
forward and backward pass of the layer on ``batch_size`` rows; LeNet-300-100 at the defaults takes 10 to 15 s on
one CPU thread.
"""

from __future__ import annotations

import copy
import math
from typing import Annotated, Literal

import numpy as np
import torch
from pydantic import ConfigDict, Field
from torch import nn
from torch.nn import functional as F
from torch.nn.utils import parametrize

from ...errors import DataError
from ...packed import AffineWeight
from ...train import LearningRateValue
from .._registry import Context, TechniqueConfig, register_technique
from ._layers import MAX_BITS, MIN_BITS, QUANTIZABLE_LAYERS, quantizable_layers
from .ptq import PTQConfig, quantize_weight

ZETA, GAMMA = 1.1, -0.1
"""Stretch of the rectified sigmoid (the paper's values): h reaches exactly 0 and 1 at finite V."""
BETA_START, BETA_END = 20.0, 2.0
"""Exponent of the rounding regulariser, annealed linearly after the warm-up: flat at first (only weights
already near 0 or 1 are held there), sharper later (every h pushed to 0 or 1)."""
FORWARD_CHUNK = 256
"""Calibration rows per forward pass when capturing layer inputs and targets."""


class AdaRoundConfig(TechniqueConfig):
    """Bits, calibration data and optimiser settings of learned rounding."""

    # nn.Sequential layers are named "0", "1", ..., which YAML and --step read as numbers
    model_config = ConfigDict(coerce_numbers_to_str=True)

    bits: Annotated[int, Field(ge=MIN_BITS, le=MAX_BITS)] = Field(
        4, description="bits per weight code: 2^bits values per output channel (or tensor)")
    # Chosen on LeNet-300-100 / Fashion-MNIST validation data: lr 0.1 cut the first layer's 3-bit output error
    # from 70 (nearest) to 5, against 11 at lr 0.01 and 25 at lr 0.001 (1000 steps); 2000 steps or 4096 samples
    # lowered it further but did not raise validation accuracy, at twice the time or memory.
    iterations: int = Field(1000, ge=0, le=1_000_000, description="Adam steps per layer (0: round to nearest)")
    samples: int = Field(1024, ge=1, description="training rows to calibrate on, drawn with the seed")
    batch_size: int = Field(128, ge=1, description="calibration rows per Adam step")
    lr: LearningRateValue = Field(0.1, description="Adam learning rate of the rounding variables V")
    reg_weight: float = Field(0.01, ge=0, description="lambda: weight of the rounding regulariser against the "
                              "squared output error (summed over output channels, averaged over rows)")
    warmup: float = Field(0.2, ge=0, lt=1, description="fraction of the iterations before the regulariser starts")
    # Both targets reconstruct from the quantized model's inputs; they differ in what they aim at. On
    # LeNet-300-100 / Fashion-MNIST (two trainings, 2, 3 and 4 bits) "quantized" validated a little better (mean
    # validation accuracy +0.07 to +0.16 points, validation loss equal or lower), so it is the default.
    target: Literal["float", "quantized"] = Field(
        "quantized", description="what each layer reconstructs: the float layer on the quantized model's inputs "
        "(quantized), or the float model's own layer outputs (float: the paper's asymmetric reconstruction)")
    granularity: Literal["tensor", "channel"] = Field(
        "channel", description="one grid per tensor, or per output channel (dim 0)")
    symmetric: bool = Field(True, description="grid over [-max|w|, max|w|] instead of [min w, max w]")
    skip: list[str] = Field(default_factory=list, description="layer names left in float")


def rectified_sigmoid(v: torch.Tensor) -> torch.Tensor:
    """``h(V) = clip(sigmoid(V) (zeta - gamma) + gamma, 0, 1)``."""
    return (torch.sigmoid(v) * (ZETA - GAMMA) + GAMMA).clamp(0, 1)


def inverse_rectified_sigmoid(h: torch.Tensor) -> torch.Tensor:
    """A ``V`` with ``h(V) = h`` for ``h`` in [0, 1] (the start: soft weights equal the float weights)."""
    p = (h - GAMMA) / (ZETA - GAMMA)  # in [0.09, 0.91]: finite logits
    return torch.log(p / (1 - p))


class _RoundingRegulariser(torch.autograd.Function):
    """``sum(1 - |2h - 1|^beta)`` with a hand-written backward that reuses ``|2h - 1|^(beta - 1)``: one
    power per step instead of autograd's three (the power dominates the cost of a step on large layers)."""

    @staticmethod
    def forward(ctx, h: torch.Tensor, beta: float) -> torch.Tensor:
        centred = 2 * h - 1
        power = centred.abs().pow(beta - 1)  # |2h - 1|^(beta - 1); beta >= 2, so finite at h = 1/2
        ctx.save_for_backward(centred, power)
        ctx.beta = beta
        return (1 - power * centred.abs()).sum()

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        centred, power = ctx.saved_tensors
        return grad * (-2 * ctx.beta) * power * centred.sign(), None


def rounding_regulariser(h: torch.Tensor, beta: float) -> torch.Tensor:
    """``sum(1 - |2h - 1|^beta)``: zero when every ``h`` is 0 or 1, largest at ``h = 1/2``."""
    return _RoundingRegulariser.apply(h, beta)


def beta_at(step: int, iterations: int, warmup: float) -> float | None:
    """The regulariser exponent at ``step``: None during the warm-up, then linear from 20 down to 2."""
    start = int(warmup * iterations)
    if step < start:
        return None
    return BETA_END + (BETA_START - BETA_END) * max(0.0, 1 - (step - start) / max(iterations - start, 1))


def _layer_forward(layer: nn.Module, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``layer`` on ``x`` with ``weight`` in place of its own and its (detached) bias; no hooks run, so an input
    quantizer already applied to captured inputs is not applied twice."""
    bias = layer.bias.detach() if layer.bias is not None else None
    if isinstance(layer, nn.Linear):
        return F.linear(x, weight, bias)
    return layer._conv_forward(x, weight, bias)


def _capture(model: nn.Module, layer: nn.Module, X: torch.Tensor, *, output: bool) -> torch.Tensor | None:
    """The input (or output) of ``layer`` while ``model`` runs on ``X``: Linear as rows (N, features), Conv as
    (N, C, ...); None if the forward pass never calls the layer. Calls whose shape differs from the first
    (a layer reused on another spatial size) are left out."""
    found: list[torch.Tensor] = []

    def record(module: nn.Module, args: tuple, result: torch.Tensor | None = None) -> None:
        value = (result if output else args[0]).detach()
        if isinstance(module, nn.Linear):
            value = value.reshape(-1, value.shape[-1])
        if not found or value.shape[1:] == found[0].shape[1:]:
            found.append(value)

    handle = layer.register_forward_hook(record) if output else layer.register_forward_pre_hook(record)
    try:
        with torch.no_grad():
            for chunk in X.split(FORWARD_CHUNK):
                model(chunk)
    finally:
        handle.remove()
    return torch.cat(found) if found else None


def learn_rounding(layer: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, start: AffineWeight,
                   cfg: AdaRoundConfig, generator: torch.Generator) -> AffineWeight:
    """AdaRound codes on the grid of ``start`` (nearest rounding's packed weight) for one layer.

    Args:
        layer: the Linear/Conv layer; its current float weight is what gets rounded.
        inputs: the layer's calibration inputs, one row (or sample) per item of dim 0.
        targets: what the layer should output on them, same length.
        start: nearest rounding on the grid to keep (its scale and offset).
        cfg: iterations, batch size, learning rate and regulariser.
        generator: draws the mini-batches.
    """
    weight = layer.weight.detach()
    shape, highest = weight.shape, 2**start.bits - 1
    per_channel = start.scale.dim() == 1
    rows = weight.float().reshape(shape[0] if per_channel else 1, -1)  # (C, N)
    scale = start.scale.reshape(-1, 1) if per_channel else start.scale.reshape(1, 1)
    offset = start.offset.reshape(-1, 1) if per_channel else start.offset.reshape(1, 1)
    position = (rows - offset) / torch.where(scale > 0, scale, torch.ones_like(scale))  # in [0, highest]
    # floor at most highest - 1, so floor + h stays on the code range with no clamp (h in [0, 1])
    floor = position.floor().clamp(0, max(highest - 1, 0))
    v = nn.Parameter(inverse_rectified_sigmoid((position - floor).clamp(0, 1)))
    base = (floor * scale + offset).reshape(shape)  # the weight when every h is 0
    step_size = scale.expand_as(rows).reshape(shape)
    optimizer = torch.optim.Adam([v], lr=cfg.lr)

    for step in range(cfg.iterations):
        batch = torch.randint(len(inputs), (min(cfg.batch_size, len(inputs)),), generator=generator)
        batch = batch.to(inputs.device)
        h = rectified_sigmoid(v)
        out = _layer_forward(layer, inputs[batch], (base + h.reshape(shape) * step_size).to(weight.dtype))
        loss = (out - targets[batch]).pow(2).sum(dim=1).mean()
        beta = beta_at(step, cfg.iterations, cfg.warmup)
        if beta is not None and cfg.reg_weight > 0:
            loss = loss + cfg.reg_weight * rounding_regulariser(h, beta)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        codes = (floor + (rectified_sigmoid(v) >= 0.5).to(floor.dtype)).clamp(0, highest)
    return AffineWeight(codes.reshape(shape).to(torch.int32), start.bits, start.scale, start.offset)


def _calibration_rows(ctx: Context, samples: int, device: torch.device) -> torch.Tensor:
    data = ctx.dataset
    if len(data.X_train) == 0:
        raise DataError("quantize.adaround needs training rows to calibrate on, got none")
    rows = np.sort(np.random.default_rng(ctx.seed).permutation(len(data.X_train))[:samples])
    return torch.as_tensor(data.X_train[rows], device=device)


@register_technique("quantize.adaround", AdaRoundConfig, applies_to=QUANTIZABLE_LAYERS,
                    claims=("weight_bits", "size_bytes"))
def quantize_adaround(model: nn.Module, cfg: AdaRoundConfig, ctx: Context) -> nn.Module:
    """Round every Linear/Conv weight up or down on the uniform grid to best reconstruct each layer's outputs."""
    layers = quantizable_layers(model, cfg.skip)
    parameter = next(model.parameters(), None)
    X = _calibration_rows(ctx, cfg.samples, parameter.device if parameter is not None else torch.device("cpu"))
    grid = PTQConfig(bits=cfg.bits, method="nearest", landmarks="uniform", granularity=cfg.granularity,
                     symmetric=cfg.symmetric)
    generator = torch.Generator().manual_seed(ctx.seed)  # mini-batches: same seed, same codes
    was_training = model.training
    model.eval()  # no dropout, no BatchNorm statistics updates while calibrating
    float_model = copy.deepcopy(model) if cfg.target == "float" and cfg.iterations > 0 else None
    float_layers = dict(float_model.named_modules()) if float_model is not None else {}
    try:
        for name, layer in _forward_order(model, layers, X):
            packed = quantize_weight(layer.weight, cfg.bits, grid, generator)  # nearest rounding
            inputs = _capture(model, layer, X, output=False)  # through the layers quantized so far
            if inputs is not None and cfg.iterations > 0:  # a layer the forward pass never calls keeps nearest
                if float_model is not None:
                    targets = _capture(float_model, float_layers[name], X, output=True)
                else:
                    with torch.no_grad():
                        weight = layer.weight.detach()
                        targets = torch.cat([_layer_forward(layer, chunk, weight)
                                             for chunk in inputs.split(FORWARD_CHUNK)])
                packed = learn_rounding(layer, inputs, targets, packed, cfg, generator)
            # last in the chain, on top of any earlier parametrization (a pruning mask), as quantize.ptq does
            parametrize.register_parametrization(layer, "weight", packed)
    finally:
        model.train(was_training)
    return model


def _forward_order(model: nn.Module, layers: list[tuple[str, nn.Module]],
                   X: torch.Tensor) -> list[tuple[str, nn.Module]]:
    """``layers`` in the order a forward pass first calls them; layers it never calls go last."""
    rank: dict[int, int] = {}

    def record(module: nn.Module, args: tuple) -> None:  # returns None: the inputs pass unchanged
        rank.setdefault(id(module), len(rank))

    handles = [layer.register_forward_pre_hook(record) for _, layer in layers]
    try:
        with torch.no_grad():
            model(X[:1])
    finally:
        for handle in handles:
            handle.remove()
    return sorted(layers, key=lambda item: rank.get(id(item[1]), math.inf))
