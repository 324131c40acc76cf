"""CIFAR VGG with batch norm (Simonyan & Zisserman), as defined by the RepDistiller code.

Five conv blocks (3×3 conv with bias, BN, ReLU) separated by 2×2 max-pools, no FC
stack: adaptive average pooling to 1×1 and one linear layer on the 512 channels. As in
RepDistiller the fourth max-pool is skipped when the map is already 4×4 (32×32 inputs),
so blocks 3 and 4 both work on 4×4 maps for CIFAR and on 8×8 / 4×4 for 64×64 inputs.
RepDistiller's ``vgg8`` (its name for ``vgg8_bn``) has 3,965,028 parameters for 100
classes; vgg8 3.9M and vgg13 9.4M for 10 classes in the AMD paper.

Features: the outputs (after ReLU) of block 1, block 2 and the last block — at 32×32
input 128×16×16, 256×8×8, 512×4×4. That is the last block at each of the three deepest
resolutions, so VGG gives the same number of maps (3) as the CIFAR ResNets / WRNs it is
paired with, and the last map is the one the classifier pools, as for every network
here (SP and similar methods use ``features[-1]``). Block 0 (32×32, one or two convs)
and block 3 (same resolution as block 4 on CIFAR) are left out; on 64×64 inputs the same
blocks give 32×32, 16×16, 4×4. AMD and AT pool the larger map of a pair to the smaller
one, so WRN's 32/16/8 maps pair with VGG's 16/8/4.

Usage::

    net = build_model("vgg8", num_classes=100)
    logits, (b1, b2, b4) = net(images)      # 128×16×16, 256×8×8, 512×4×4 for 32×32 images
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from kdtui.models import MODELS
from kdtui.models.base import ModelOutput
from kdtui.models.resnet_cifar import kaiming_init

# Convs per block for each depth (RepDistiller's configs S, A, B, D, E).
CONFIGS = {
    8: [[64], [128], [256], [512], [512]],
    11: [[64], [128], [256, 256], [512, 512], [512, 512]],
    13: [[64, 64], [128, 128], [256, 256], [512, 512], [512, 512]],
    16: [[64, 64], [128, 128], [256, 256, 256], [512, 512, 512], [512, 512, 512]],
    19: [[64, 64], [128, 128], [256, 256, 256, 256], [512, 512, 512, 512], [512, 512, 512, 512]],
}
FEATURE_BLOCKS = (1, 2, 4)


def _block(in_channels: int, widths: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for width in widths:
        layers += [nn.Conv2d(in_channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU()]
        in_channels = width
    return nn.Sequential(*layers)


class VGG(nn.Module):
    def __init__(self, config: list[list[int]], num_classes: int) -> None:
        super().__init__()
        in_channels = [3] + [widths[-1] for widths in config[:-1]]
        self.blocks = nn.ModuleList(_block(c, widths) for c, widths in zip(in_channels, config))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(config[-1][-1], num_classes)
        kaiming_init(self)

    def forward(self, x: Tensor) -> ModelOutput:
        features = []
        for index, block in enumerate(self.blocks):
            # Halve before blocks 1-4, except a 4×4 map stays 4×4 (RepDistiller's CIFAR rule).
            if index > 0 and (index < 4 or min(x.shape[-2:]) > 4):
                x = F.max_pool2d(x, 2, 2)
            x = block(x)
            if index in FEATURE_BLOCKS:
                features.append(x)
        return ModelOutput(self.classifier(self.pool(x).flatten(1)), features)


def _register(depth: int) -> None:
    @MODELS.register(f"vgg{depth}")
    def factory(num_classes: int) -> VGG:
        return VGG(CONFIGS[depth], num_classes)


for _depth in CONFIGS:
    _register(_depth)
