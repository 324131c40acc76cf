"""Hinton knowledge distillation: τ² · KL(softmax(t/τ) ‖ softmax(s/τ)), batch-mean (the λ2 term).

Usage::

    method = LOSSES.get("kd")(KDOptions(weight=0.9, temperature=4.0))
    terms = method(inputs)          # {"KD": tensor}
    value = kd_divergence(student_logits, teacher_logits, temperature=4.0)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from kdtui.losses.registry import LOSSES
from kdtui.losses.base import LossInputs, LossMethod, require_teacher_logits
from kdtui.schema import option


def kd_divergence(student_logits: Tensor, teacher_logits: Tensor, temperature: float) -> Tensor:
    """τ² · KL(p_t ‖ p_s) with p = softmax(logits / τ): summed over classes, mean over the batch.

    Runs in float32 with autocast off, so the value is the same under bf16/fp16 autocast.
    The teacher side is detached: gradient reaches the student only.
    """
    tau = float(temperature)
    with torch.autocast(device_type=student_logits.device.type, enabled=False):
        log_ps = F.log_softmax(student_logits.float() / tau, dim=1)
        log_pt = F.log_softmax(teacher_logits.detach().float() / tau, dim=1)
        # p_t · (log p_t − log p_s); exp(log_pt) underflowing to 0 gives 0, never NaN.
        kl = (log_pt.exp() * (log_pt - log_ps)).sum(dim=1).mean()
        # τ² keeps the gradient scale independent of τ (Hinton et al.).
        return kl * (tau * tau)


@dataclass
class KDOptions:
    weight: float = option(1.0, help="weight λ2 of the KD (soft-target) term", ge=0)
    temperature: float = option(4.0, help="softmax temperature τ", gt=0)


@LOSSES.register("kd")
class KDLoss(LossMethod):
    Options = KDOptions
    needs_teacher = True

    def forward(self, inputs: LossInputs) -> dict[str, Tensor]:
        return {
            "KD": kd_divergence(
                inputs.student_logits, require_teacher_logits("kd", inputs), self.options.temperature
            )
        }
