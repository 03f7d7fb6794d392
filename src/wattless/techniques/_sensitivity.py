"""How much a model's loss (or outputs) suffers when one layer alone is approximated: the table that mixed
precision, multi-point quantization and sensitivity-driven pruning all allocate from."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np
from torch import nn

from ..errors import ModelError
from ..train import metrics_from_outputs, predict

Sensitivity = Literal["loss", "output"]
"""What :func:`damage_table` measures: loss increase, or mean squared change of the outputs."""
Approximate = Callable[[nn.Module, str, Any], nn.Module]
"""``approximate(model_copy, layer, option)``: the copy with only ``layer`` approximated with ``option``."""


def damage_table(model: nn.Module, layers: Sequence[str], options: Sequence[Any], approximate: Approximate,
                 X: np.ndarray, y: np.ndarray, task: str, measure: Sensitivity = "loss") -> np.ndarray:
    """(layers, options) damage on rows ``X, y`` when only that layer is approximated (a copy; ``model`` is left
    as it was).

    ``loss``: increase of the task loss (cross-entropy or MSE; can be negative by chance).
    ``output``: mean squared change of the model outputs (logits or predictions) from the original's,
    never negative and far less noisy. An option the layer refuses (``ModelError``, e.g. more landmarks
    than distinct weights) or a non-finite result counts as infinite damage, picked only when forced.
    """
    reference = predict(model, X)
    base = metrics_from_outputs(reference, y, task)["loss"]
    table = np.empty((len(layers), len(options)))
    for i, layer in enumerate(layers):
        for j, option in enumerate(options):
            try:
                outputs = predict(approximate(copy.deepcopy(model), layer, option), X)
            except ModelError:
                table[i, j] = math.inf
                continue
            damage = (metrics_from_outputs(outputs, y, task)["loss"] - base if measure == "loss"
                      else float(np.mean((outputs - reference) ** 2)))
            table[i, j] = damage if math.isfinite(damage) else math.inf
    return table
