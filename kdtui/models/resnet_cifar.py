"""CIFAR ResNets (He et al. 2016) as defined by the RepDistiller (CRD) code.

Post-activation basic blocks (conv-BN-ReLU-conv-BN, add, ReLU), a 3×3 stem and three
stages of n = (d - 2) / 6 blocks at strides 1, 2, 2. A shortcut that changes the shape is
a 1×1 conv + BN (option B, as in RepDistiller): resnet20 has 272,474 parameters for 10
classes (the paper's 0.27M; the zero-padding shortcuts of option A would give 269,722).

* ``resnet8`` … ``resnet110``: widths 16 / 16, 32, 64 (stem / stages).
* ``resnet8x4``, ``resnet32x4``: the same basic-block nets four times wider,
  widths 32 / 64, 128, 256 (RepDistiller's names: 1.23M and 7.43M for 100 classes).

Features: the three stage outputs after their final ReLU (what the next stage sees;
RepDistiller's ``preact=False`` maps): C×32×32, 2C×16×16, 4C×8×8 on a 32×32 input.
``last_map`` is the third; ``embedding`` is it globally average-pooled (4C).
``block_features``: every block's output (after its ReLU), 3n maps — the AFD code's.

Usage::

    net = build_model("resnet20", num_classes=10)
    s1, s2, s3 = net(images).features       # 16×32×32, 32×16×16, 64×8×8 for 32×32 images
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from kdtui.models.registry import MODELS
from kdtui.models.base import ModelOutput


def kaiming_init(net: nn.Module) -> None:
    """He-normal convs (fan-out), BN as identity, zero linear bias: the CIFAR nets' init."""
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.zeros_(m.bias)


class BasicBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = (
            nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))
            if stride != 1 or in_planes != planes
            else nn.Identity()
        )

    def forward(self, x: Tensor) -> Tensor:
        out = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        return torch.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    def __init__(self, depth: int, widths: tuple[int, int, int, int], num_classes: int) -> None:
        super().__init__()
        if depth < 8 or (depth - 2) % 6 != 0:
            raise ValueError(f"a CIFAR basic-block ResNet has depth 6n+2 (n >= 1), got {depth}")
        blocks = (depth - 2) // 6
        self.conv1 = nn.Conv2d(3, widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        stages, in_planes = [], widths[0]
        for index, planes in enumerate(widths[1:]):
            stride = 1 if index == 0 else 2
            layers = []
            for i in range(blocks):
                layers.append(BasicBlock(in_planes, planes, stride if i == 0 else 1))
                in_planes = planes
            stages.append(nn.Sequential(*layers))
        self.stages = nn.ModuleList(stages)
        # Adaptive pooling: any input size (32x32 CIFAR, 64x64 Tiny-ImageNet) works.
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(widths[3], num_classes)
        kaiming_init(self)

    def forward(self, x: Tensor) -> ModelOutput:
        out = torch.relu(self.bn1(self.conv1(x)))
        features, blocks = [], []
        for stage in self.stages:
            for block in stage:
                out = block(out)
                blocks.append(out)
            features.append(out)
        embedding = self.pool(out).flatten(1)
        return ModelOutput(self.fc(embedding), features, embedding, out, blocks)


def _register(name: str, depth: int, widths: tuple[int, int, int, int]) -> None:
    @MODELS.register(name)
    def factory(num_classes: int) -> CifarResNet:
        return CifarResNet(depth, widths, num_classes)


for _depth in (8, 14, 20, 26, 32, 44, 56, 110):
    _register(f"resnet{_depth}", _depth, (16, 16, 32, 64))
for _depth in (8, 32):
    _register(f"resnet{_depth}x4", _depth, (32, 64, 128, 256))
