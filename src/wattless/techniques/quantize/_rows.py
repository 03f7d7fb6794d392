"""Per-output-channel sensitivity: the validation damage when only one row of one layer is quantized.

Changing row ``c`` of a Linear or Conv weight by ``d`` changes only output channel ``c`` of that layer, by
``layer(x, d)`` (no bias). So one extra call of the layer with the whole quantization error ``E = Q(W) - W``
as its weight gives the output change of every single-row quantization at once: channel ``c`` of
``layer(x, E)``. The model is then run once per chunk of ``K`` rows, with a forward hook that fans the
layer's float output out into ``K`` copies along the batch, copy ``k`` carrying row ``c_k``'s change: the
layers before run once per chunk and the later ones on ``K * N`` rows. This is exact (the same numbers as
quantizing that one row and running the model, up to float rounding) at roughly the cost of the later layers
per row instead of a whole forward pass each.

A model whose later layers do not treat batch rows independently of the layer's output (a skip connection
from before the layer, a reshape to a fixed batch size, a layer called twice) fails a check made once per
layer and falls back to a forward pass per row, the row's change added to the weight by a temporary
parametrization on a copy of the model: slower, but right for any model.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils import parametrize

FAN_OUT_ELEMENTS = 1 << 24
"""Most values of the fanned-out layer output held at once (64 MB of float32); sets the chunk size."""
MAX_CHUNK = 64


def _channel_dim(layer: nn.Module) -> int:
    return -1 if isinstance(layer, nn.Linear) else 1


def _output_change(layer: nn.Module, x: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """``layer(x)`` with weight ``delta`` and no bias: channel c is the output change of row c's change."""
    if isinstance(layer, nn.Linear):
        return F.linear(x, delta)
    return layer._conv_forward(x, delta, None)


class _RowChange(nn.Module):
    """Temporary last parametrization: the weight plus ``change`` (one row non-zero), edited in place."""

    def __init__(self, weight: torch.Tensor):
        super().__init__()
        self.register_buffer("change", torch.zeros_like(weight))

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight + self.change


Damage = Callable[[torch.Tensor], np.ndarray]
"""Outputs of ``K`` copies of the validation rows, shape (K * N, ...) -> damage of each copy, shape (K,)."""


def damage_function(reference: torch.Tensor, y: torch.Tensor, task: str, measure: str) -> Damage:
    """The loss increase over ``reference`` (cross-entropy or MSE, as :func:`wattless.train.metrics_from_outputs`
    computes it) or, with ``measure="output"``, the mean squared change of the outputs, per copy, in float64."""
    n = reference.shape[0]

    def losses(outputs: torch.Tensor) -> torch.Tensor:  # (K * N, ...) -> (K, N) per-row losses
        copies = outputs.shape[0] // n
        if task == "classification":
            return F.cross_entropy(outputs.double(), y.repeat(copies), reduction="none").reshape(copies, n)
        return (outputs.double().reshape(copies, n) - y.double()) ** 2

    base = losses(reference).mean()

    def damage(outputs: torch.Tensor) -> np.ndarray:
        copies = outputs.shape[0] // n
        if measure == "loss":
            return (losses(outputs).mean(dim=1) - base).numpy()
        change = outputs.double().reshape(copies, n, -1) - reference.double().reshape(1, n, -1)
        return change.pow(2).mean(dim=(1, 2)).numpy()

    return damage


def _fan_out_works(model: nn.Module, layer: nn.Module, X: torch.Tensor, reference: torch.Tensor) -> bool:
    """Whether two fanned-out copies of the layer's output (no change) give the reference outputs twice."""
    def twice(module, inputs, output):
        return output.repeat(2, *([1] * (output.dim() - 1)))

    handle = layer.register_forward_hook(twice)
    try:
        outputs = model(X)
    except RuntimeError:
        return False
    finally:
        handle.remove()
    return outputs.shape == (2 * reference.shape[0], *reference.shape[1:]) and torch.allclose(
        outputs, reference.repeat(2, *([1] * (reference.dim() - 1))), rtol=1e-4, atol=1e-5)


def row_damage(model: nn.Module, name: str, quantized: list[torch.Tensor], X: torch.Tensor,
               damage: Damage, reference: torch.Tensor) -> np.ndarray:
    """(rows, options): damage with only row ``c`` of layer ``name`` replaced by its row in ``quantized[j]``
    (the whole weight quantized with option ``j``), every other weight as it is. ``model`` is in eval mode
    and left unchanged."""
    layer = model.get_submodule(name)
    weight = layer.weight.detach()
    rows = weight.shape[0]
    table = np.empty((rows, len(quantized)))
    if not _fan_out_works(model, layer, X, reference):
        return _row_damage_one_by_one(model, name, quantized, X, damage, table)
    captured: dict[str, torch.Tensor] = {}
    handle = layer.register_forward_hook(lambda module, inputs, output: captured.update(x=inputs[0], y=output))
    model(X)
    handle.remove()
    x, base = captured["x"], captured["y"]
    dim = _channel_dim(layer) % base.dim()
    chunk = max(1, min(MAX_CHUNK, rows, FAN_OUT_ELEMENTS // max(base.numel(), 1)))
    for j, q in enumerate(quantized):
        change = _output_change(layer, x, q - weight)  # channel c: the change of quantizing row c alone
        for start in range(0, rows, chunk):
            picked = range(start, min(start + chunk, rows))

            def fan_out(module, inputs, output, picked=picked, change=change):
                copies = output.unsqueeze(0).repeat(len(picked), *([1] * output.dim()))
                for k, c in enumerate(picked):
                    copies[k].select(dim, c).add_(change.select(dim, c))
                return copies.flatten(0, 1)

            handle = layer.register_forward_hook(fan_out)
            try:
                table[picked.start:picked.stop, j] = damage(model(X))
            finally:
                handle.remove()
    return table


def _row_damage_one_by_one(model: nn.Module, name: str, quantized: list[torch.Tensor], X: torch.Tensor,
                           damage: Damage, table: np.ndarray) -> np.ndarray:
    """The fallback: a copy of the model whose weight gets each row's change in turn, one forward pass each."""
    trial = copy.deepcopy(model)
    layer = trial.get_submodule(name)
    weight = layer.weight.detach().clone()
    edit = _RowChange(weight)
    parametrize.register_parametrization(layer, "weight", edit)
    for j, q in enumerate(quantized):
        for c in range(weight.shape[0]):
            edit.change.zero_()
            edit.change[c] = q[c] - weight[c]
            table[c, j] = damage(trial(X))[0]
    return table
