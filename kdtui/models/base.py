"""The contract every network follows.

``model(x)`` returns a :class:`ModelOutput`:

* ``logits``;
* ``features``: the stage feature maps that feature-based methods (AT, AMD, FitNet, ...)
  pair layer by layer between teacher and student. They are the maps RepDistiller's
  ``model(x, is_feat=True)`` returns as ``feat[1:-1]``, taken as far as a three-map partner
  zips them: for WRN the outputs of its three residual groups (before the final BN-ReLU),
  for VGG blocks 1–3, for MobileNetV2 its 16×16, 8×8 and 4×4 stages (32×32 input);
* ``embedding``: the penultimate vector, B×D — what the classifier's linear layer sees
  (after the final BN-ReLU where there is one, and global average pooling); RepDistiller's
  ``feat[-1]``, used by PKT and RKD;
* ``last_map``: the last feature map before that pooling, B×C×H×W — RepDistiller's
  ``feat[-2]``, used by SP. It is ``features[-1]`` except for VGG (block 4) and
  MobileNetV2 (its 2×2 stage on CIFAR), whose ``feat[1:-1]`` has a fourth map;
* ``block_features``: finer-grained, activated maps, one per residual block (or unit /
  conv layer), shallow to deep, used by AFD (Ji et al. 2021), whose official code takes
  them from WRN and ResNet as: for a pre-activation WRN, the input of every block but
  the first after that block's BN-ReLU, and the last group's output after the final
  BN-ReLU; for a ResNet, every block's output after its ReLU. Each network's module
  says what it gives.

It is a NamedTuple, so it passes through DDP and ``torch.compile`` unchanged.
"""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor, nn


class ModelOutput(NamedTuple):
    logits: Tensor
    features: list[Tensor]
    embedding: Tensor | None = None
    last_map: Tensor | None = None
    block_features: list[Tensor] | None = None


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
