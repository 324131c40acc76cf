"""CIFAR VGG with batch norm (Simonyan & Zisserman), as defined by the RepDistiller code.

Five conv blocks (3×3 conv with bias, BN, ReLU) separated by 2×2 max-pools, no FC
stack: adaptive average pooling to 1×1 and one linear layer on the 512 channels. As in
RepDistiller the fourth max-pool is skipped when the map is already 4×4 (32×32 inputs),
so blocks 3 and 4 both work on 4×4 maps for CIFAR and on 8×8 / 4×4 for 64×64 inputs.
RepDistiller's ``vgg8`` (its name for ``vgg8_bn``) has 3,965,028 parameters for 100
classes; vgg8 3.9M and vgg13 9.4M for 10 classes in the AMD paper.

Features: the outputs (after ReLU) of blocks 1, 2 and 3 — at 32×32 input 128×16×16,
256×8×8, 512×4×4; at 64×64 input 32×32, 16×16, 8×8. RepDistiller's ``is_feat=True`` gives
``feat[1:-1]`` = blocks 1–4, and its feature losses zip them with the partner's maps:
with the three maps of a WRN / ResNet (every VGG pair of the AMD paper) that is blocks
1–3, so kdtui exposes those three. AMD and AT pool the larger map of a pair to the
smaller one, so WRN's 32/16/8 maps pair with VGG's 16/8/4. ``last_map`` is block 4's
output (RepDistiller's ``feat[-2]``, what SP uses; 512×4×4 on CIFAR as block 3's, but a
different tensor) and ``embedding`` its global average (512), what the classifier sees.
``block_features``: every conv layer's output after its ReLU but the first (vgg8: 4).

Usage::

    net = build_model("vgg8", num_classes=100)
    out = net(images)       # out.features: blocks 1-3, 128×16×16, 256×8×8, 512×4×4
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from kdtui.models.registry import MODELS
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
FEATURE_BLOCKS = (1, 2, 3)


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
        features, convs = [], []
        for index, block in enumerate(self.blocks):
            # Halve before blocks 1-4, except a 4×4 map stays 4×4 (RepDistiller's CIFAR rule).
            if index > 0 and (index < 4 or min(x.shape[-2:]) > 4):
                x = F.max_pool2d(x, 2, 2)
            for layer in block:
                x = layer(x)
                if isinstance(layer, nn.ReLU):
                    convs.append(x)
            if index in FEATURE_BLOCKS:
                features.append(x)
        embedding = self.pool(x).flatten(1)
        return ModelOutput(self.classifier(embedding), features, embedding, x, convs[1:])


def _register(depth: int) -> None:
    @MODELS.register(f"vgg{depth}")
    def factory(num_classes: int) -> VGG:
        return VGG(CONFIGS[depth], num_classes)


for _depth in CONFIGS:
    _register(_depth)
