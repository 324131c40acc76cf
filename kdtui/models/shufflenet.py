"""ShuffleNetV1 (Zhang et al. 2018) and V2 (Ma et al. 2018), CIFAR variants of RepDistiller.

Both keep full resolution in the stem (a 1×1 conv to 24 channels, no stride, no
max-pool) and halve it at the start of each of three stages.

* ``shufflenetv1`` (RepDistiller ``ShuffleV1``): g = 3 groups, stage widths 240, 480,
  960 with 4, 8, 4 bottleneck units; a stride-2 unit concatenates its 3×3-avg-pooled
  input, and the first pointwise conv after the stem is not grouped.
* ``shufflenetv2`` (RepDistiller ``ShuffleV2``, net size 1×): widths 116, 232, 464, a
  1×1 conv to 1024 before the classifier; each stage is one down-sampling unit followed
  by 3, 7, 3 basic units (so one unit more per stage than the ImageNet 4, 8, 4).

Features: the three stage outputs (after the unit's final ReLU / channel shuffle), at
32×32 input 240×16×16, 480×8×8, 960×4×4 (V1) and 116×16×16, 232×8×8, 464×4×4 (V2):
three maps like the CIFAR ResNets / WRNs (RepDistiller's ``feat[1:-1]``), the last one
feeding the head and also ``last_map``. ``embedding``: V1 pools the last map (960), V2 the
1×1 head conv's BN-ReLU output (1024). ``block_features``: every unit's output.

Usage::

    net = build_model("shufflenetv2", num_classes=100)
    s1, s2, s3 = net(images).features       # 116×16×16, 232×8×8, 464×4×4 for 32×32 images
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from kdtui.models.registry import MODELS
from kdtui.models.base import ModelOutput
from kdtui.models.resnet_cifar import kaiming_init


def channel_shuffle(x: Tensor, groups: int) -> Tensor:
    """Interleave the channels of ``groups`` groups, so grouped convs see each other's output."""
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


def _conv_bn(in_channels: int, out_channels: int, kernel: int, stride: int = 1,
             groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(out_channels),
    )


class ShuffleV1Unit(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int, groups: int) -> None:
        super().__init__()
        self.stride = stride
        mid = out_channels // 4
        # The 24-channel stem output is too narrow to split into groups (ShuffleNet paper).
        self.first_groups = 1 if in_channels == 24 else groups
        self.reduce = _conv_bn(in_channels, mid, 1, groups=self.first_groups)
        self.depthwise = _conv_bn(mid, mid, 3, stride, groups=mid)
        self.expand = _conv_bn(mid, out_channels, 1, groups=groups)
        self.shortcut = nn.AvgPool2d(3, 2, 1) if stride == 2 else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        out = channel_shuffle(torch.relu(self.reduce(x)), self.first_groups)
        # ReLU after the depthwise conv, as in the RepDistiller code the counts come from.
        out = self.expand(torch.relu(self.depthwise(out)))
        shortcut = self.shortcut(x)
        return torch.relu(torch.cat([out, shortcut], 1) if self.stride == 2 else out + shortcut)


class ShuffleNetV1(nn.Module):
    def __init__(self, num_classes: int, widths: tuple[int, ...] = (240, 480, 960),
                 units: tuple[int, ...] = (4, 8, 4), groups: int = 3) -> None:
        super().__init__()
        self.stem = _conv_bn(3, 24, 1)
        stages, channels = [], 24
        for width, count in zip(widths, units):
            # The stride-2 unit concatenates its input, so its branch makes the difference.
            blocks = [ShuffleV1Unit(channels, width - channels, 2, groups)]
            blocks += [ShuffleV1Unit(width, width, 1, groups) for _ in range(count - 1)]
            stages.append(nn.Sequential(*blocks))
            channels = width
        self.stages = nn.ModuleList(stages)
        # Adaptive pooling: any input size (32x32 CIFAR, 64x64 Tiny-ImageNet) works.
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)
        kaiming_init(self)

    def forward(self, x: Tensor) -> ModelOutput:
        out = torch.relu(self.stem(x))
        features, blocks = [], []
        for stage in self.stages:
            for unit in stage:
                out = unit(out)
                blocks.append(out)
            features.append(out)
        embedding = self.pool(out).flatten(1)
        return ModelOutput(self.fc(embedding), features, embedding, out, blocks)


class ShuffleV2Unit(nn.Module):
    """Basic unit: half the channels pass through, the other half gets 1×1-dw3×3-1×1."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        half = channels // 2
        self.branch = nn.Sequential(_conv_bn(half, half, 1), nn.ReLU(), _conv_bn(half, half, 3, groups=half),
                                    _conv_bn(half, half, 1), nn.ReLU())

    def forward(self, x: Tensor) -> Tensor:
        keep, transform = x.chunk(2, dim=1)
        return channel_shuffle(torch.cat([keep, self.branch(transform)], 1), 2)


class ShuffleV2Down(nn.Module):
    """Down-sampling unit: two stride-2 branches on the whole input, concatenated."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        mid = out_channels // 2
        self.left = nn.Sequential(_conv_bn(in_channels, in_channels, 3, 2, groups=in_channels),
                                  _conv_bn(in_channels, mid, 1), nn.ReLU())
        self.right = nn.Sequential(_conv_bn(in_channels, mid, 1), nn.ReLU(),
                                   _conv_bn(mid, mid, 3, 2, groups=mid), _conv_bn(mid, mid, 1), nn.ReLU())

    def forward(self, x: Tensor) -> Tensor:
        return channel_shuffle(torch.cat([self.left(x), self.right(x)], 1), 2)


class ShuffleNetV2(nn.Module):
    def __init__(self, num_classes: int, widths: tuple[int, ...] = (116, 232, 464),
                 units: tuple[int, ...] = (3, 7, 3), last: int = 1024) -> None:
        super().__init__()
        self.stem = _conv_bn(3, 24, 1)
        stages, channels = [], 24
        for width, count in zip(widths, units):
            stages.append(nn.Sequential(ShuffleV2Down(channels, width),
                                        *(ShuffleV2Unit(width) for _ in range(count))))
            channels = width
        self.stages = nn.ModuleList(stages)
        self.head = _conv_bn(channels, last, 1)
        # Adaptive pooling: any input size (32x32 CIFAR, 64x64 Tiny-ImageNet) works.
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(last, num_classes)
        kaiming_init(self)

    def forward(self, x: Tensor) -> ModelOutput:
        out = torch.relu(self.stem(x))
        features, blocks = [], []
        for stage in self.stages:
            for unit in stage:
                out = unit(out)
                blocks.append(out)
            features.append(out)
        embedding = self.pool(torch.relu(self.head(out))).flatten(1)
        return ModelOutput(self.fc(embedding), features, embedding, out, blocks)


@MODELS.register("shufflenetv1")
def shufflenetv1(num_classes: int) -> ShuffleNetV1:
    return ShuffleNetV1(num_classes)


@MODELS.register("shufflenetv2")
def shufflenetv2(num_classes: int) -> ShuffleNetV2:
    return ShuffleNetV2(num_classes)
