"""ImageNet ResNet-18/34/50 (He et al. 2016): torchvision's networks, untrained.

Built with ``torchvision.models.resnetXX(weights=None)`` and adopted module by module, so
the parameter names (``conv1.weight``, ``layer1.0.bn1.weight``, ``fc.bias``) are
torchvision's and its pretrained state dicts load as they are. Counts for 1000 classes
are torchvision's: 11,689,512 / 21,797,672 / 25,557,032. torchvision is imported when a
network is built, not when the registry is filled (it costs seconds).

Features: the four stage outputs layer1..layer4 — at 224×224 input 64×56×56, 128×28×28,
256×14×14, 512×7×7 for resnet18/34 (×4 channels for resnet50). The stem's stride-2 conv
and max-pool stay, so a 64×64 input gives 16, 8, 4, 2. ``last_map`` is layer4's output,
``embedding`` it globally average-pooled (512, or 2048 for resnet50). ``block_features``:
every block's output (after its ReLU): 8, 16 and 16 maps.

Usage::

    net = build_model("resnet34", num_classes=1000)
    l1, l2, l3, l4 = net(images).features   # 224×224 (or 64×64) images
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from kdtui.models.registry import MODELS
from kdtui.models.base import ModelOutput


class ImageNetResNet(nn.Module):
    def __init__(self, arch: str, num_classes: int) -> None:
        super().__init__()
        from torchvision import models

        net = getattr(models, arch)(weights=None, num_classes=num_classes)
        # Same children, same names as torchvision's ResNet: its state dicts fit as they are.
        for name, child in net.named_children():
            self.add_module(name, child)

    def forward(self, x: Tensor) -> ModelOutput:
        out = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        features, blocks = [], []
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            for block in layer:
                out = block(out)
                blocks.append(out)
            features.append(out)
        # torchvision's avgpool is adaptive (1×1): any input size works.
        embedding = torch.flatten(self.avgpool(out), 1)
        return ModelOutput(self.fc(embedding), features, embedding, out, blocks)


def _register(arch: str) -> None:
    @MODELS.register(arch)
    def factory(num_classes: int) -> ImageNetResNet:
        return ImageNetResNet(arch, num_classes)


# kdtui's networks that are torchvision's own: its pretrained weights load into them.
TORCHVISION_NETWORKS = ("resnet18", "resnet34", "resnet50")

for _arch in TORCHVISION_NETWORKS:
    _register(_arch)
