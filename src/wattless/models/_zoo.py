"""Built-in models: a configurable MLP, LeNet-300-100 and LeNet-5.

Every factory takes ``(input_shape, num_outputs, **options)`` so one spec rebuilds it. Regression
models take ``target_mean``/``target_std`` (target units) and end in a fixed :class:`ScaleShift`, so
the network learns a standardised target but outputs, and exports, predictions in the data's units.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import ModelError
from ._registry import register_model


class ScaleShift(nn.Module):
    """``y = x * scale + shift`` with fixed (non-trainable) scalars; maps standardised outputs to units."""

    def __init__(self, scale: float, shift: float):
        super().__init__()
        self.register_buffer("scale", torch.tensor(float(scale)))
        self.register_buffer("shift", torch.tensor(float(shift)))

    def forward(self, x):
        return x * self.scale + self.shift


def _flat_features(input_shape: tuple[int, ...]) -> int:
    if not input_shape:
        raise ModelError("the model needs an input shape; give a data set")
    return math.prod(input_shape)


def _head(width: int, num_outputs: int, target_mean: float, target_std: float) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Linear(width, num_outputs)]
    if (target_mean, target_std) != (0.0, 1.0):
        layers.append(ScaleShift(target_std, target_mean))
    return layers


def _mlp(in_features: int, hidden: list[int], num_outputs: int, dropout: float,
         target_mean: float, target_std: float) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Flatten()]
    width = in_features
    for size in hidden:
        if int(size) <= 0:
            raise ModelError(f"hidden layer sizes must be positive, got {hidden}")
        layers += [nn.Linear(width, int(size)), nn.ReLU()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = int(size)
    return nn.Sequential(*layers, *_head(width, num_outputs, target_mean, target_std))


@register_model("mlp")
def mlp(input_shape, num_outputs, hidden: list[int] | tuple[int, ...] = (128, 64), dropout: float = 0.0,
        target_mean: float = 0.0, target_std: float = 1.0):
    """Fully connected ReLU network; ``num_outputs=1`` gives a regression head."""
    return _mlp(_flat_features(input_shape), list(hidden), num_outputs, dropout, target_mean, target_std)


@register_model("lenet300")
def lenet300(input_shape, num_outputs, target_mean: float = 0.0, target_std: float = 1.0):
    """LeNet-300-100 (LeCun et al., 1998): input-300-100-output, fully connected."""
    return _mlp(_flat_features(input_shape), [300, 100], num_outputs, 0.0, target_mean, target_std)


class LeNet5(nn.Module):
    """LeNet-5-style conv net: conv(6,5x5,pad 2) pool conv(16,5x5) pool fc120 fc84 fc(out), ReLU."""

    def __init__(self, input_shape, num_outputs, target_mean: float = 0.0, target_std: float = 1.0):
        super().__init__()
        if len(input_shape) != 3:
            raise ModelError(f"lenet5 needs image inputs (channels, height, width), got {list(input_shape)}")
        channels, height, width = input_shape
        if min(height, width) < 12:
            raise ModelError(f"lenet5 needs images of at least 12x12 pixels, got {height}x{width}")
        self.features = nn.Sequential(
            nn.Conv2d(channels, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        )
        out_h, out_w = (height // 2 - 4) // 2, (width // 2 - 4) // 2
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(16 * out_h * out_w, 120), nn.ReLU(),
            nn.Linear(120, 84), nn.ReLU(), *_head(84, num_outputs, target_mean, target_std),
        )

    def forward(self, x):
        return self.classifier(self.features(x))


@register_model("lenet5")
def lenet5(input_shape, num_outputs, target_mean: float = 0.0, target_std: float = 1.0):
    """LeNet-5 for 1x28x28 (or other) images."""
    return LeNet5(tuple(input_shape), num_outputs, target_mean, target_std)
