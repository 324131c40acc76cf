"""The contract every network follows.

``model(x)`` returns a :class:`ModelOutput`: the logits and the list of stage feature
maps (for WRN the outputs of its three residual groups, before the final BN-ReLU) that
feature-based distillation methods (AT, AMD, ...) compare between teacher and student.
It is a NamedTuple, so it passes through DDP and ``torch.compile`` unchanged.
"""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor, nn


class ModelOutput(NamedTuple):
    logits: Tensor
    features: list[Tensor]


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
