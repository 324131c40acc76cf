"""Wide residual networks WRN-d-k (Zagoruyko & Komodakis), as used in the KD literature.

Pre-activation basic blocks (BN-ReLU-conv), widths 16, 16k, 32k, 64k, depth d = 6n + 4
with n blocks per group: the definition of the attention-transfer and RepDistiller code,
so parameter counts match the papers (wrn_16_1: 175,066 for 10 classes).

Usage::

    net = build_model("wrn_16_3", num_classes=10)
    out = net(images)       # out.logits, out.features (g1, g2, g3), out.embedding, ...

Features: the three group outputs, before the final BN-ReLU (RepDistiller's ``feat[1:-1]``
with ``preact=False``): 16k×32×32, 32k×16×16, 64k×8×8 on a 32×32 input. ``last_map`` is
the third; ``embedding`` is it after the final BN-ReLU, globally average-pooled (64k).
``block_features`` (3n maps, n per group at its shape): every block's input after that
block's BN-ReLU but the first block's, and the final BN-ReLU output — the features of the
AFD code (clovaai/attention-feature-distillation, models/wrn.py).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from kdtui.errors import ConfigError
from kdtui.models.registry import MODELS
from kdtui.models.base import ModelOutput


class PreActBlock(nn.Module):
    def __init__(self, in_planes: int, out_planes: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, out_planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_planes)
        self.conv2 = nn.Conv2d(out_planes, out_planes, 3, 1, 1, bias=False)
        self.shortcut = (
            nn.Conv2d(in_planes, out_planes, 1, stride, 0, bias=False)
            if in_planes != out_planes or stride != 1
            else None
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_with_input(x)[0]

    def forward_with_input(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(output, the block's activated input relu(bn1(x)))."""
        pre = torch.relu(self.bn1(x))
        out = self.conv2(torch.relu(self.bn2(self.conv1(pre))))
        # A projection shortcut takes the activated input, as in the original WRN code.
        return out + (x if self.shortcut is None else self.shortcut(pre)), pre


class WideResNet(nn.Module):
    def __init__(self, depth: int, width: int, num_classes: int) -> None:
        super().__init__()
        if depth < 10 or (depth - 4) % 6 != 0 or width < 1:
            raise ConfigError(
                f"wrn_{depth}_{width} is not a valid WRN: the depth must be 6n+4 with n >= 1 "
                "(10, 16, 22, 28, 40, ...) and the width factor at least 1, e.g. wrn_16_1 or wrn_40_2."
            )
        blocks = (depth - 4) // 6
        widths = [16, 16 * width, 32 * width, 64 * width]
        self.conv1 = nn.Conv2d(3, widths[0], 3, 1, 1, bias=False)
        self.groups = nn.ModuleList(
            nn.Sequential(
                *(
                    PreActBlock(widths[g] if i == 0 else widths[g + 1], widths[g + 1],
                                (1 if g == 0 else 2) if i == 0 else 1)
                    for i in range(blocks)
                )
            )
            for g in range(3)
        )
        self.bn = nn.BatchNorm2d(widths[3])
        # Adaptive pooling: any input size (32x32 CIFAR, 64x64 Tiny-ImageNet) works.
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(widths[3], num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> ModelOutput:
        out = self.conv1(x)
        features, blocks = [], []
        for group in self.groups:
            for block in group:
                out, pre = block.forward_with_input(out)
                blocks.append(pre)
            features.append(out)
        activated = torch.relu(self.bn(out))
        embedding = self.pool(activated).flatten(1)
        # Every block's activated input but the first (the stem's output), then the final
        # BN-ReLU output: the AFD code's features.
        return ModelOutput(self.fc(embedding), features, embedding, out, blocks[1:] + [activated])


@MODELS.register_family("wrn", r"wrn_(\d+)_(\d+)",
                        examples=("wrn_16_1", "wrn_16_2", "wrn_16_3", "wrn_16_8", "wrn_28_1",
                                  "wrn_40_1", "wrn_40_2"))
def wrn(depth: str, width: str, num_classes: int) -> WideResNet:
    return WideResNet(int(depth), int(width), num_classes)
