"""Cross-entropy of the student's logits against the labels (the λ1 term).

Usage::

    method = LOSSES.get("ce")(CEOptions(weight=0.1))
    terms = method(inputs)          # {"CE": tensor}
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from kdtui.losses.registry import LOSSES
from kdtui.losses.base import LossInputs, LossMethod
from kdtui.schema import option


@dataclass
class CEOptions:
    weight: float = option(1.0, help="weight λ1 of cross-entropy", ge=0)
    label_smoothing: float = option(
        0.0, help="label smoothing ε: the target is (1-ε)·one-hot + ε/classes", ge=0, lt=1
    )


@LOSSES.register("ce")
class CELoss(LossMethod):
    Options = CEOptions
    needs_teacher = False

    def forward(self, inputs: LossInputs) -> dict[str, Tensor]:
        logits = inputs.student_logits
        # float32 so the reported value does not depend on the autocast dtype.
        smoothing = self.options.label_smoothing
        with torch.autocast(device_type=logits.device.type, enabled=False):
            loss = F.cross_entropy(logits.float(), inputs.labels, label_smoothing=smoothing)
            if inputs.mixed_labels is not None:  # Mixup/CutMix: against the mixed targets
                partner = F.cross_entropy(logits.float(), inputs.mixed_labels, label_smoothing=smoothing)
                loss = inputs.mix_weight * loss + (1.0 - inputs.mix_weight) * partner
        return {"CE": loss}
