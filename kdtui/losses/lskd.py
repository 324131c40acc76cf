"""Logit-standardised KD (Sun et al., "Logit Standardization in Knowledge Distillation",
CVPR 2024, arXiv 2403.01427).

Each sample's logits are z-scored before the usual KD: Z(z) = (z − mean(z)) / (1e-7 +
std(z)), mean and (unbiased, N − 1) standard deviation over the classes, for the student
and the teacher separately; then LSKD = τ² · KL(softmax(Z(t)/τ) ‖ softmax(Z(s)/τ)), summed
over classes and averaged over the batch. The student matches the teacher's logit
*relations*, not their scale. τ is the paper's "base temperature".

Transcribed from the official code (sunshangquan/logit-standardization-KD,
``mdistiller/distillers/KD.py``: ``normalize`` and ``kd_loss(..., logit_stand=True)``);
defaults are its CIFAR setting ``--logit-stand --base-temp 2 --kd-weight 9``, with the CE
weight 0.1 of its config (use ``ce: {weight: 0.1}`` and no plain ``kd`` beside it).

Usage::

    value = lskd_divergence(student_logits, teacher_logits, temperature=2.0)
    method = LOSSES.get("lskd")(LSKDOptions(weight=9.0, temperature=2.0))
    terms = method(inputs)          # {"LSKD": tensor}
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from kdtui.losses.registry import LOSSES
from kdtui.losses.base import LossInputs, LossMethod, require_teacher_logits
from kdtui.losses.kd import kd_divergence
from kdtui.schema import option

STD_EPS = 1e-7  # the official ``(logit - mean) / (1e-7 + stdv)``


def standardise(logits: Tensor) -> Tensor:
    """(z − mean) / (1e-7 + std) over the classes of each row; std is unbiased (N − 1)."""
    mean = logits.mean(dim=-1, keepdim=True)
    std = logits.std(dim=-1, keepdim=True)
    return (logits - mean) / (STD_EPS + std)


def lskd_divergence(student_logits: Tensor, teacher_logits: Tensor, temperature: float) -> Tensor:
    """τ² · KL(softmax(Z(t)/τ) ‖ softmax(Z(s)/τ)), batch-mean; float32, autocast off.

    The teacher side is detached: gradient reaches the student only.
    """
    if student_logits.shape[-1] < 2:
        raise ValueError("LSKD standardises logits over the classes, so it needs at least two")
    with torch.autocast(device_type=student_logits.device.type, enabled=False):
        z_s = standardise(student_logits.float())
        with torch.no_grad():
            z_t = standardise(teacher_logits.detach().float())
        return kd_divergence(z_s, z_t, temperature)


@dataclass
class LSKDOptions:
    weight: float = option(9.0, help="weight of the logit-standardised KD term (paper: 9)", ge=0)
    temperature: float = option(2.0, help="base temperature τ applied after the z-score", gt=0)


@LOSSES.register("lskd")
class LSKDLoss(LossMethod):
    Options = LSKDOptions
    needs_teacher = True

    def forward(self, inputs: LossInputs) -> dict[str, Tensor]:
        teacher = require_teacher_logits("lskd", inputs)
        return {"LSKD": lskd_divergence(inputs.student_logits, teacher, self.options.temperature)}
