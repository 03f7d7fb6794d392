"""ResNet-18 in its CIFAR form (He et al., 2016, "Deep Residual Learning for Image Recognition", section 4.2).

The ImageNet stem (7x7 stride-2 convolution and max-pool) would shrink a 32x32 image to 8x8 before the first
block; the CIFAR form replaces it with one 3x3 stride-1 convolution and no pooling, as in most CIFAR-10 ResNet-18
results (e.g. github.com/kuangliu/pytorch-cifar). Blocks are BasicBlocks [2, 2, 2, 2] with widths 64-128-256-512
(scaled by ``width``), BatchNorm after every convolution, a 1x1 convolution + BatchNorm shortcut where the shape
changes, global average pooling and a linear head. Any (channels, height, width) input works: the stride-2
convolutions are padded, so even a 1x1 image passes.
"""

from __future__ import annotations

from torch import nn

from ..errors import ModelError
from ._registry import register_model
from ._zoo import _head

STAGE_WIDTHS = (64, 128, 256, 512)
"""Output channels of the four stages at ``width=1``."""


def _conv_bn(in_channels: int, out_channels: int, kernel_size: int, stride: int) -> list[nn.Module]:
    conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding=kernel_size // 2, bias=False)
    return [conv, nn.BatchNorm2d(out_channels)]


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with an identity (or 1x1 conv-BN) shortcut: ``relu(body(x) + shortcut(x))``."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(*_conv_bn(in_channels, out_channels, 3, stride), nn.ReLU(),
                                  *_conv_bn(out_channels, out_channels, 3, 1))
        needs_projection = stride != 1 or in_channels != out_channels
        self.shortcut = nn.Sequential(*_conv_bn(in_channels, out_channels, 1, stride)) if needs_projection \
            else nn.Identity()
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.body(x) + self.shortcut(x))


class ResNet(nn.Module):
    """CIFAR-style ResNet: 3x3 stem, four stages of BasicBlocks, global average pooling, linear head."""

    def __init__(self, input_shape: tuple[int, ...], num_outputs: int, blocks: tuple[int, ...] = (2, 2, 2, 2),
                 width: float = 1.0, target_mean: float = 0.0, target_std: float = 1.0):
        super().__init__()
        if len(input_shape) != 3:
            raise ModelError(f"resnet needs image inputs (channels, height, width), got {list(input_shape)}")
        if not width > 0:
            raise ModelError(f"resnet width must be positive, got {width}")
        widths = [max(1, round(w * width)) for w in STAGE_WIDTHS]
        self.stem = nn.Sequential(*_conv_bn(int(input_shape[0]), widths[0], 3, 1), nn.ReLU())
        stages, channels = [], widths[0]
        for index, (count, out_channels) in enumerate(zip(blocks, widths, strict=True)):
            stride = 1 if index == 0 else 2
            layers = [BasicBlock(channels if i == 0 else out_channels, out_channels, stride if i == 0 else 1)
                      for i in range(count)]
            stages.append(nn.Sequential(*layers))
            channels = out_channels
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Sequential(*_head(channels, num_outputs, target_mean, target_std))
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):  # x: (B, C, H, W)
        x = self.layer4(self.layer3(self.layer2(self.layer1(self.stem(x)))))
        return self.head(self.pool(x))


@register_model("resnet18")
def resnet18(input_shape, num_outputs, width: float = 1.0, target_mean: float = 0.0, target_std: float = 1.0):
    """ResNet-18, CIFAR form; ``width`` scales every layer's channels (0.125 gives 8-16-32-64)."""
    return ResNet(tuple(input_shape), num_outputs, (2, 2, 2, 2), width, target_mean, target_std)
