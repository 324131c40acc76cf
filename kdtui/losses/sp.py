"""Similarity-Preserving distillation (Tung & Mori, ICCV 2019, arXiv 1907.09682).

For a student/teacher feature pair flattened to B×D (D may differ between the two):
G = normalize(f fᵀ) row-wise (B×B), and the loss is ‖G_s − G_t‖_F² / B². By default
(``layers: null``) the pair is the networks' last feature maps before global pooling
(``LossInputs.student_last_map`` / ``teacher_last_map``): what RepDistiller feeds it
(``[feat_s[-2]]``, ``[feat_t[-2]]``) — for WRN the last group's output before the final
BN-ReLU, for VGG block 4, for MobileNetV2 its last (2×2 on CIFAR) stage — with weight
γ = 3000. ``layers: [i, ...]`` uses those feature-map pairs instead, and the term SP is
the sum over them. Formula checked against RepDistiller's ``Similarity`` ("verified by
original author").

Usage::

    value = sp_loss(student_feats, teacher_feats)
    method = LOSSES.get("sp")(SPOptions(weight=3000.0))          # last maps before pooling
    terms = method(inputs)          # {"SP": tensor}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from kdtui.errors import ConfigError
from kdtui.losses.registry import LOSSES
from kdtui.losses.base import LossInputs, LossMethod, check_layers, select_pairs, no_teacher_error
from kdtui.schema import option


def similarity_matrix(feat: Tensor) -> Tensor:
    """normalize(f fᵀ) with f = feat flattened to B×D; each row has unit L2 norm (eps 1e-12)."""
    f = feat.flatten(1)
    return F.normalize(f @ f.t(), dim=1)


def sp_loss(student_feats: Sequence[Tensor], teacher_feats: Sequence[Tensor]) -> Tensor:
    """Σ over pairs of ‖G_s − G_t‖_F² / B².

    float32 with autocast off; gradient reaches the student features only.
    """
    student_feats, teacher_feats = list(student_feats), list(teacher_feats)
    total = student_feats[0].new_zeros((), dtype=torch.float32)
    with torch.autocast(device_type=student_feats[0].device.type, enabled=False):
        for index, (fs, ft) in enumerate(zip(student_feats, teacher_feats)):
            if fs.shape[0] != ft.shape[0]:
                raise ValueError(
                    f"SP pair {index}: batch sizes differ ({fs.shape[0]} vs {ft.shape[0]})"
                )
            b = fs.shape[0]
            with torch.no_grad():
                g_t = similarity_matrix(ft.detach().float())
            g_s = similarity_matrix(fs.float())
            total = total + (g_s - g_t).pow(2).sum() / (b * b)
    return total


@dataclass
class SPOptions:
    weight: float = option(3000.0, help="weight γ of similarity-preserving distillation", ge=0)
    layers: list[int] | None = option(
        None,
        help="indices of the feature-map pairs to compare; null: the last map before pooling "
        "(RepDistiller's feat[-2])",
        nonempty=True,
    )


@LOSSES.register("sp")
class SPLoss(LossMethod):
    Options = SPOptions
    needs_teacher = True

    def __init__(self, options: SPOptions) -> None:
        super().__init__(options)
        check_layers("sp", options.layers)

    def forward(self, inputs: LossInputs) -> dict[str, Tensor]:
        if self.options.layers is None:
            if inputs.teacher_features is None and inputs.teacher_last_map is None:
                raise no_teacher_error("sp")
            fs, ft = inputs.student_last_map, inputs.teacher_last_map
            if fs is None or ft is None:
                raise ConfigError(
                    f"sp compares the networks' last feature maps before pooling, but the "
                    f"{'student' if fs is None else 'teacher'} gives none (ModelOutput.last_map; "
                    f"every built-in network does): set sp.layers, e.g. [-1]."
                )
            return {"SP": sp_loss([fs], [ft])}
        pairs = select_pairs(
            "sp", inputs.student_features, inputs.teacher_features, self.options.layers
        )
        return {"SP": sp_loss([s for s, _ in pairs], [t for _, t in pairs])}
