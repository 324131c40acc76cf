"""Networks registered by name in :data:`MODELS`; each returns :class:`ModelOutput`.

Usage::

    from kdtui.models import build_model
    net = build_model("wrn_16_1", num_classes=10)
    out = net(torch.randn(8, 3, 32, 32))    # out.logits, out.features, out.embedding, ...
"""

from __future__ import annotations

from torch import nn

from kdtui.models.base import ModelOutput, count_parameters
from kdtui.models.registry import MODELS

from kdtui.models import wrn  # noqa: E402,F401  (fills MODELS)
from kdtui.models import resnet_cifar, vgg, mobilenetv2, shufflenet, resnet_imagenet  # noqa: E402,F401


def build_model(name: str, num_classes: int) -> nn.Module:
    return MODELS.get(name)(num_classes=num_classes)


__all__ = ["MODELS", "ModelOutput", "build_model", "count_parameters"]
