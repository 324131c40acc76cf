"""Relational Knowledge Distillation (Park et al., CVPR 2019, arXiv 1904.05068).

On B×D embeddings (D may differ between student and teacher):

* RKD_D (distance): pairwise Euclidean distances ψ_D = ‖e_i − e_j‖ (squared distances
  clamped at 1e-12 before the square root, diagonal 0), each divided by the mean of the
  positive ones; smooth-L1 (β = 1, mean) between student and teacher.
* RKD_A (angle): ψ_A(i, j, k) = ⟨normalize(e_j − e_i), normalize(e_k − e_i)⟩ over all
  B³ triples (normalize: eps 1e-12, zero for j = i); smooth-L1 between student and teacher.

Checked against RepDistiller's ``RKDLoss`` (w_d = 25, w_a = 50 there and here); ``combine``
gives w_d·RKD_D + w_a·RKD_A, which the method's ``weight`` (default 1) multiplies. With
fewer than two samples there is no relation to compare and both terms are 0.

Embedding: the networks' penultimate vectors (``LossInputs.student_embedding`` /
``teacher_embedding``, what the classifier sees), as RepDistiller feeds RKD (``feat[-1]``);
see :func:`kdtui.losses.pkt.embeddings`.

Usage::

    terms = rkd_terms(student_embedding, teacher_embedding)   # {"RKD_D": ..., "RKD_A": ...}
    method = LOSSES.get("rkd")(RKDOptions(distance_weight=25.0, angle_weight=50.0))
    value = method.combine(method(inputs))
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from kdtui.errors import ConfigError
from kdtui.losses.registry import LOSSES
from kdtui.losses.base import LossInputs, LossMethod
from kdtui.losses.pkt import embeddings
from kdtui.schema import option

PDIST_EPS = 1e-12


def pairwise_distances(e: Tensor) -> Tensor:
    """B×B Euclidean distances: sqrt(clamp(‖e_i‖² + ‖e_j‖² − 2⟨e_i, e_j⟩, 1e-12)), diagonal 0."""
    sq = e.pow(2).sum(dim=1)
    d = (sq.unsqueeze(1) + sq.unsqueeze(0) - 2.0 * (e @ e.t())).clamp(min=PDIST_EPS).sqrt()
    eye = torch.eye(len(e), dtype=torch.bool, device=e.device)
    return d.masked_fill(eye, 0.0)


def _normalised_distances(e: Tensor) -> Tensor:
    d = pairwise_distances(e)
    return d / d[d > 0].mean()


def _angles(e: Tensor) -> Tensor:
    diff = e.unsqueeze(0) - e.unsqueeze(1)  # [i, j] = e_j − e_i
    unit = F.normalize(diff, p=2, dim=2)
    return torch.bmm(unit, unit.transpose(1, 2)).flatten()


def rkd_terms(student: Tensor, teacher: Tensor) -> dict[str, Tensor]:
    """RKD_D and RKD_A on B×D embeddings.

    float32 with autocast off; gradient reaches the student embedding only.
    """
    with torch.autocast(device_type=student.device.type, enabled=False):
        student = student.float().flatten(1)
        if student.shape[0] < 2:
            zero = student.sum() * 0.0  # keeps the graph, so backward() still works
            return {"RKD_D": zero, "RKD_A": zero}
        with torch.no_grad():
            teacher = teacher.detach().float().flatten(1)
            t_d = _normalised_distances(teacher)
            t_a = _angles(teacher)
        return {
            "RKD_D": F.smooth_l1_loss(_normalised_distances(student), t_d),
            "RKD_A": F.smooth_l1_loss(_angles(student), t_a),
        }


@dataclass
class RKDOptions:
    weight: float = option(1.0, help="weight multiplying w_d·RKD_D + w_a·RKD_A", ge=0)
    distance_weight: float = option(25.0, help="weight w_d of the distance term RKD_D", ge=0)
    angle_weight: float = option(50.0, help="weight w_a of the angle term RKD_A", ge=0)


@LOSSES.register("rkd")
class RKDLoss(LossMethod):
    Options = RKDOptions
    needs_teacher = True

    def __init__(self, options: RKDOptions) -> None:
        super().__init__(options)
        if options.distance_weight < 0 or options.angle_weight < 0:
            raise ConfigError("rkd: distance_weight and angle_weight must be at least 0.")
        if options.distance_weight == 0 and options.angle_weight == 0:
            raise ConfigError(
                "rkd: distance_weight and angle_weight are both 0, so RKD would add nothing; "
                "give one a positive value, or set rkd's weight to 0 to turn it off."
            )

    def forward(self, inputs: LossInputs) -> dict[str, Tensor]:
        with torch.autocast(device_type=inputs.student_logits.device.type, enabled=False):
            es, et = embeddings("rkd", inputs)
            return rkd_terms(es, et)

    def combine(self, terms: dict[str, Tensor]) -> Tensor:
        """w_d·RKD_D + w_a·RKD_A (RepDistiller's RKDLoss value)."""
        opts = self.options
        return opts.distance_weight * terms["RKD_D"] + opts.angle_weight * terms["RKD_A"]
