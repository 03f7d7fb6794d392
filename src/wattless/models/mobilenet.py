"""MobileNet (Howard et al., 2017, arXiv:1704.04861) in its CIFAR form, with grouped pointwise convolutions.

Each block factorizes a 3x3 convolution into a depthwise 3x3 convolution (one filter per channel) and a
pointwise 1x1 convolution, each followed by BatchNorm and ReLU6: about 8-9x fewer MACs than the full
convolution. The CIFAR form starts with a stride-1 3x3 convolution (32x32 images are too small for the
ImageNet stride-2 stem) and keeps MobileNet v1's 13 blocks, ending in global average pooling and a linear head.

``width`` is the paper's width multiplier alpha: every layer's channels are scaled by it. ``groups > 1`` splits
every pointwise convolution into that many groups (``groups`` times fewer weights and MACs) followed by a
channel shuffle, so information still crosses groups (ShuffleNet, Zhang et al., 2018, arXiv:1707.01083).
Channel counts are rounded to a multiple of ``groups``.
"""

from __future__ import annotations

from torch import nn

from ..errors import ModelError
from ._registry import register_model
from ._zoo import _head

STEM_CHANNELS = 32
CIFAR_BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
                (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1))
"""(output channels at width 1, stride of the depthwise convolution) of the 13 blocks."""


class ChannelShuffle(nn.Module):
    """Interleave the channels of ``groups`` groups: (B, g*c, H, W) -> view (B, g, c, H, W) -> transpose."""

    def __init__(self, groups: int):
        super().__init__()
        self.groups = groups

    def forward(self, x):
        return x.unflatten(1, (self.groups, -1)).transpose(1, 2).flatten(1, 2)


def _conv_bn_relu6(in_channels: int, out_channels: int, kernel_size: int, stride: int, groups: int) -> list:
    conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, groups=groups, bias=False)
    return [conv, nn.BatchNorm2d(out_channels), nn.ReLU6()]


class DepthwiseSeparable(nn.Sequential):
    """Depthwise 3x3 (stride) -> BN -> ReLU6 -> pointwise 1x1 (``groups``) -> BN -> ReLU6 [-> channel shuffle]."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, groups: int):
        layers = [*_conv_bn_relu6(in_channels, in_channels, 3, stride, in_channels),
                  *_conv_bn_relu6(in_channels, out_channels, 1, 1, groups)]
        if groups > 1:
            layers.append(ChannelShuffle(groups))
        super().__init__(*layers)


class MobileNet(nn.Module):
    """Stem conv, depthwise-separable blocks, global average pooling, [dropout], linear head."""

    def __init__(self, input_shape: tuple[int, ...], num_outputs: int, width: float, groups: int, dropout: float,
                 target_mean: float, target_std: float):
        super().__init__()
        if len(input_shape) != 3:
            raise ModelError(f"mobilenet needs image inputs (channels, height, width), got {list(input_shape)}")
        if not width > 0:
            raise ModelError(f"mobilenet width must be positive, got {width}")
        if groups < 1:
            raise ModelError(f"mobilenet groups must be at least 1, got {groups}")
        if not 0.0 <= dropout < 1.0:
            raise ModelError(f"mobilenet dropout must be in [0, 1), got {dropout}")

        def scaled(channels: int) -> int:
            return groups * max(1, round(channels * width / groups))

        channels = scaled(STEM_CHANNELS)
        self.stem = nn.Sequential(*_conv_bn_relu6(int(input_shape[0]), channels, 3, 1, 1))
        blocks = []
        for out_channels, stride in CIFAR_BLOCKS:
            blocks.append(DepthwiseSeparable(channels, scaled(out_channels), stride, groups))
            channels = scaled(out_channels)
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout))
        self.head = nn.Sequential(*_head(channels, num_outputs, target_mean, target_std))
        for module in self.modules():
            # He initialization by fan-in (9 for a depthwise filter): PyTorch's default, and fan-out, which counts
            # every channel of a depthwise layer, shrink activations layer by layer, and after 27 convolutions an
            # untrained model in eval mode gives the same output for every input
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")

    def forward(self, x):  # x: (B, C, H, W)
        return self.head(self.pool(self.blocks(self.stem(x))))


@register_model("mobilenet")
def mobilenet(input_shape, num_outputs, width: float = 1.0, groups: int = 1, dropout: float = 0.0,
              target_mean: float = 0.0, target_std: float = 1.0):
    """MobileNet v1, CIFAR form; ``width`` multiplies channels, ``groups`` groups the pointwise convolutions."""
    return MobileNet(tuple(input_shape), num_outputs, float(width), int(groups), float(dropout),
                     target_mean, target_std)
