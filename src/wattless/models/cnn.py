"""A small configurable convolutional network for Fashion-MNIST, CIFAR-10/100 and other small images.

One block per entry of ``channels``: a ``kernel_size`` convolution (padded to keep the size), optional
BatchNorm, ReLU, then 2x2 max or average pooling (skipped once the feature map is smaller than 2x2). The
feature maps are flattened into a ``hidden``-unit fully connected layer and the output layer, with dropout
before each. Feature-map sizes are computed from ``input_shape``, so the model builds on the ``meta`` device.
"""

from __future__ import annotations

from torch import nn

from ..errors import ModelError
from ._registry import register_model
from ._zoo import _head

POOLS = {"max": nn.MaxPool2d, "avg": nn.AvgPool2d, "none": None}
"""Down-sampling after each block, by name."""


class ConvNet(nn.Module):
    """conv blocks -> flatten -> [dropout] Linear(hidden) ReLU -> [dropout] output layer."""

    def __init__(self, input_shape: tuple[int, ...], num_outputs: int, channels: list[int], kernel_size: int,
                 batch_norm: bool, dropout: float, pool: str, hidden: int, target_mean: float, target_std: float):
        super().__init__()
        _check_options(input_shape, channels, kernel_size, dropout, pool, hidden)
        in_channels, height, width = (int(d) for d in input_shape)
        layers: list[nn.Module] = []
        for out_channels in (int(c) for c in channels):
            layers.append(nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2,
                                    bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm2d(out_channels))
            layers.append(nn.ReLU())
            # a padded convolution keeps odd kernels' size and grows even kernels' by one
            height, width = height + 1 - kernel_size % 2, width + 1 - kernel_size % 2
            if POOLS[pool] is not None and min(height, width) >= 2:
                layers.append(POOLS[pool](2))
                height, width = height // 2, width // 2
            in_channels = out_channels
        self.features = nn.Sequential(*layers)
        classifier: list[nn.Module] = [nn.Flatten()]
        features = in_channels * height * width
        if hidden:
            classifier += [nn.Dropout(dropout), nn.Linear(features, hidden), nn.ReLU()]
            features = hidden
        classifier += [nn.Dropout(dropout), *_head(features, num_outputs, target_mean, target_std)]
        self.classifier = nn.Sequential(*classifier)

    def forward(self, x):  # x: (B, C, H, W)
        return self.classifier(self.features(x))


def _check_options(input_shape, channels, kernel_size, dropout, pool, hidden) -> None:
    if len(input_shape) != 3:
        raise ModelError(f"cnn needs image inputs (channels, height, width), got {list(input_shape)}")
    if not channels or any(int(c) <= 0 for c in channels):
        raise ModelError(f"cnn channels must be a non-empty list of positive ints, got {channels}")
    if int(kernel_size) < 1:
        raise ModelError(f"cnn kernel_size must be at least 1, got {kernel_size}")
    if not 0.0 <= dropout < 1.0:
        raise ModelError(f"cnn dropout must be in [0, 1), got {dropout}")
    if pool not in POOLS:
        raise ModelError(f"cnn pool must be one of {', '.join(POOLS)}, got {pool!r}")
    if int(hidden) < 0:
        raise ModelError(f"cnn hidden must be 0 (no hidden layer) or positive, got {hidden}")


@register_model("cnn")
def cnn(input_shape, num_outputs, channels: list[int] | tuple[int, ...] = (32, 64, 128), kernel_size: int = 3,
        batch_norm: bool = True, dropout: float = 0.0, pool: str = "max", hidden: int = 128,
        target_mean: float = 0.0, target_std: float = 1.0):
    """Small conv net; e.g. ``channels=[64, 128, 256], dropout=0.3`` for CIFAR-100."""
    return ConvNet(tuple(input_shape), num_outputs, list(channels), int(kernel_size), bool(batch_norm),
                   float(dropout), pool, int(hidden), target_mean, target_std)
