"""Probabilistic Knowledge Transfer (Passalis & Tefas, ECCV 2018, arXiv 1803.10837).

On B×D embeddings (D may differ between student and teacher): rows are L2-normalised
(x / (‖x‖ + eps)), the cosine-similarity kernel K = (x xᵀ + 1) / 2 is turned into
conditional probabilities by normalising each row, and the term PKT is
mean over all B×B entries of p_t · log((p_t + eps) / (p_s + eps)), eps = 1e-7. This is the
authors' code as copied into RepDistiller's ``PKT.cosine_similarity_loss``; weight 30000
is RepDistiller's β for PKT.

Embedding: the network's penultimate vector, what its classifier sees (after the final
BN-ReLU where there is one, and global average pooling): ``ModelOutput.embedding``, given
to the loss as ``LossInputs.student_embedding`` / ``teacher_embedding``. That is what
RepDistiller feeds PKT (``feat_s[-1]``, ``feat_t[-1]``).

Usage::

    value = pkt_loss(student_embedding, teacher_embedding)
    method = LOSSES.get("pkt")(PKTOptions(weight=30000.0))
    terms = method(inputs)          # {"PKT": tensor}
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from kdtui.errors import ConfigError
from kdtui.losses.registry import LOSSES
from kdtui.losses.base import LossInputs, LossMethod, no_teacher_error
from kdtui.schema import option

EPS = 1e-7  # the authors' eps, in both the normalisation and the log ratio


def embeddings(name: str, inputs: LossInputs) -> tuple[Tensor, Tensor]:
    """The student's and teacher's penultimate embeddings (B×D), float32, flattened.

    Call with autocast off. The teacher's embedding is detached.
    """
    if inputs.teacher_logits is None and inputs.teacher_embedding is None:
        raise no_teacher_error(name)
    es, et = inputs.student_embedding, inputs.teacher_embedding
    if es is None or et is None:
        raise ConfigError(
            f"{name} compares the networks' penultimate embeddings, but the "
            f"{'student' if es is None else 'teacher'} gives none: its architecture must "
            f"return ModelOutput.embedding (every built-in network does)."
        )
    if es.shape[0] != et.shape[0]:
        raise ValueError(f"{name}: batch sizes differ ({es.shape[0]} vs {et.shape[0]})")
    with torch.no_grad():
        et = et.detach().float().flatten(1)
    return es.float().flatten(1), et


def _conditional_probabilities(x: Tensor) -> Tensor:
    # vector_norm (not sqrt(sum x²)) so an all-zero row has a finite (zero) gradient.
    x = x / (torch.linalg.vector_norm(x, dim=1, keepdim=True) + EPS)
    x = torch.nan_to_num(x, nan=0.0)  # the authors zero NaNs (x != x) here
    k = (x @ x.t() + 1.0) / 2.0  # cosine similarity scaled to 0..1
    return k / k.sum(dim=1, keepdim=True)


def pkt_loss(student: Tensor, teacher: Tensor) -> Tensor:
    """PKT on B×D embeddings, float32 with autocast off; gradient to the student only."""
    with torch.autocast(device_type=student.device.type, enabled=False):
        with torch.no_grad():
            p_t = _conditional_probabilities(teacher.detach().float())
        p_s = _conditional_probabilities(student.float())
        return (p_t * torch.log((p_t + EPS) / (p_s + EPS))).mean()


@dataclass
class PKTOptions:
    weight: float = option(30000.0, help="weight of probabilistic knowledge transfer", ge=0)


@LOSSES.register("pkt")
class PKTLoss(LossMethod):
    Options = PKTOptions
    needs_teacher = True

    def forward(self, inputs: LossInputs) -> dict[str, Tensor]:
        with torch.autocast(device_type=inputs.student_logits.device.type, enabled=False):
            es, et = embeddings("pkt", inputs)
            return {"PKT": pkt_loss(es, et)}
