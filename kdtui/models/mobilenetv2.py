"""MobileNetV2 (Sandler et al. 2018) for CIFAR: RepDistiller's ``mobile_half``.

The definition the CRD/RepDistiller tables call "MobileNetV2": expansion T = 6, width
multiplier 0.5 (stem 16 channels, stages 8, 12, 16, 32, 48, 80, 160), a stride-2 3×3
stem, the usual (t, c, n, s) stage table and a 1×1 conv to 1280 channels before the
classifier. As in that code every inverted residual, the t = 1 one included, starts with
a 1×1 expansion conv. 812,836 parameters for 100 classes (RepDistiller's 0.81M); 697,546
for 10 classes, inside the AMD paper's 0.6–0.8M. Registered as ``mobilenetv2`` only: it
*is* the half-width net, so there is no separate ``mobilenetv2_half``.

Features: RepDistiller's ``feat[1:-1]`` are the outputs of stages 2, 3, 5 and 7 (linear
bottlenecks, no ReLU) — at 32×32 input 12×16×16, 16×8×8, 48×4×4, 160×2×2 — and its
feature losses zip them with the partner's maps: with the three maps of a ResNet / WRN
(the AMD paper's MobileNetV2 → ResNet26) that is the first three, which kdtui exposes:
12×16×16, 16×8×8, 48×4×4 (AMD and AT pool resnet26's 32/16/8 to 16/8/4). ``last_map`` is
stage 7's output (RepDistiller's ``feat[-2]``, what SP uses; 160×2×2 on CIFAR) and
``embedding`` the 1280-d global average of the 1×1 head conv's BN-ReLU output, what the
classifier sees. ``block_features``: every inverted residual's output (17).

Usage::

    net = build_model("mobilenetv2", num_classes=100)
    out = net(images)       # out.features: 12×16×16, 16×8×8, 48×4×4; out.last_map: 160×2×2
"""

from __future__ import annotations

from torch import Tensor, nn

from kdtui.models.registry import MODELS
from kdtui.models.base import ModelOutput
from kdtui.models.resnet_cifar import kaiming_init

# expansion t, channels c, blocks n, first stride s (the paper's table; CIFAR keeps all of it).
STAGES = [(1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
          (6, 160, 3, 2), (6, 320, 1, 1)]
FEATURE_STAGES = (1, 2, 4)  # 0-based: the table's stages 2, 3 and 5


def _conv_bn(in_channels: int, out_channels: int, kernel: int, stride: int = 1, groups: int = 1,
             relu: bool = True) -> list[nn.Module]:
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, out_channels, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(out_channels),
    ]
    return layers + [nn.ReLU()] if relu else layers


class InvertedResidual(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = in_channels * expansion
        self.residual = stride == 1 and in_channels == out_channels
        self.conv = nn.Sequential(
            *_conv_bn(in_channels, hidden, 1),
            *_conv_bn(hidden, hidden, 3, stride, groups=hidden),
            # Linear bottleneck: no ReLU after the projection.
            *_conv_bn(hidden, out_channels, 1, relu=False),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv(x) if self.residual else self.conv(x)


class MobileNetV2(nn.Module):
    def __init__(self, num_classes: int, width: float = 0.5, expansion: int = 6) -> None:
        super().__init__()
        channels = int(32 * width)
        self.stem = nn.Sequential(*_conv_bn(3, channels, 3, 2))
        stages = []
        for t, c, n, s in STAGES:
            out_channels, blocks = int(c * width), []
            for i in range(n):
                # The table's t = 1 first stage keeps t; the others take the chosen expansion.
                blocks.append(InvertedResidual(channels, out_channels, s if i == 0 else 1,
                                               1 if t == 1 else expansion))
                channels = out_channels
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.ModuleList(stages)
        last = max(1280, int(1280 * width))
        self.head = nn.Sequential(*_conv_bn(channels, last, 1))
        # Adaptive pooling: any input size (32x32 CIFAR, 64x64 Tiny-ImageNet) works.
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(last, num_classes)
        kaiming_init(self)

    def forward(self, x: Tensor) -> ModelOutput:
        out = self.stem(x)
        features, blocks = [], []
        for index, stage in enumerate(self.stages):
            for block in stage:
                out = block(out)
                blocks.append(out)
            if index in FEATURE_STAGES:
                features.append(out)
        embedding = self.pool(self.head(out)).flatten(1)
        return ModelOutput(self.classifier(embedding), features, embedding, out, blocks)


@MODELS.register("mobilenetv2")
def mobilenetv2(num_classes: int) -> MobileNetV2:
    return MobileNetV2(num_classes, width=0.5, expansion=6)
