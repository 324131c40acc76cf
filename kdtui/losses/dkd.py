"""Decoupled Knowledge Distillation (Zhao et al., CVPR 2022, arXiv 2203.08679).

From logits and labels, with p = softmax(z / τ):

* TCKD = τ² · KL(b_t ‖ b_s) batch-mean, where b = (p_gt, Σ_{j≠gt} p_j) is the binary
  target/non-target distribution;
* NCKD = τ² · KL(p̂_t ‖ p̂_s) batch-mean, where p̂ = softmax(z / τ − 1000·onehot(gt)) is the
  distribution among the non-target classes (the gt class is pushed to probability 0).

``combine`` gives alpha·TCKD + beta·NCKD, which the method's ``weight`` multiplies. These are
mdistiller's ``dkd_loss`` formulas (masks, τ², −1000·gt trick, sum over classes / B);
log b is computed with logsumexp rather than log(Σ p) — the same value, but it cannot reach
log 0. Defaults are mdistiller's CIFAR ones (α = 1, β = 8, τ = 4; use ce at weight 1).

Warm-up as mdistiller: during epoch e (1-based) the weight is scaled by
min(e / warmup_epochs, 1), 20 epochs by default; ``warmup_epochs: 0`` turns it off.

Usage::

    terms = dkd_terms(student_logits, teacher_logits, labels, temperature=4.0)
    method = LOSSES.get("dkd")(DKDOptions(alpha=1.0, beta=8.0))
    value = method.combine(method(inputs))      # {"TCKD": ..., "NCKD": ...} → α·TCKD + β·NCKD
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from kdtui.losses.registry import LOSSES
from kdtui.losses.base import LossInputs, LossMethod, require_teacher_logits
from kdtui.schema import option

GT_SHIFT = 1000.0  # mdistiller's "− 1000 · gt_mask"


def _binary_log_probs(z: Tensor, labels: Tensor, gt_mask: Tensor) -> Tensor:
    """log (p_gt, p_other) for p = softmax(z): B×2, via logsumexp."""
    lse_all = torch.logsumexp(z, dim=1, keepdim=True)
    log_gt = z.gather(1, labels.unsqueeze(1)) - lse_all
    others = z.masked_fill(gt_mask, float("-inf"))
    log_other = torch.logsumexp(others, dim=1, keepdim=True) - lse_all
    return torch.cat([log_gt, log_other], dim=1)


def _kl(log_p: Tensor, log_q: Tensor) -> Tensor:
    """Σ_classes p (log p − log q), mean over the batch; exp(log p) = 0 gives 0, never NaN."""
    return (log_p.exp() * (log_p - log_q)).sum(dim=1).mean()


def dkd_terms(
    student_logits: Tensor, teacher_logits: Tensor, labels: Tensor, temperature: float = 4.0
) -> dict[str, Tensor]:
    """TCKD and NCKD (unweighted by α, β; each includes τ²), float32 with autocast off.

    The teacher side is detached: gradient reaches the student only. Needs ≥ 2 classes.
    """
    tau = float(temperature)
    if student_logits.shape[1] < 2:
        raise ValueError("DKD needs at least two classes (a target and a non-target one)")
    with torch.autocast(device_type=student_logits.device.type, enabled=False):
        z_s = student_logits.float() / tau
        labels = labels.reshape(-1).long()
        gt_mask = F.one_hot(labels, z_s.shape[1]).bool()
        shift = gt_mask.float() * GT_SHIFT
        with torch.no_grad():
            z_t = teacher_logits.detach().float() / tau
            log_b_t = _binary_log_probs(z_t, labels, gt_mask)
            log_p_t = F.log_softmax(z_t - shift, dim=1)
        tckd = _kl(log_b_t, _binary_log_probs(z_s, labels, gt_mask))
        nckd = _kl(log_p_t, F.log_softmax(z_s - shift, dim=1))
        return {"TCKD": tckd * (tau * tau), "NCKD": nckd * (tau * tau)}


@dataclass
class DKDOptions:
    weight: float = option(1.0, help="weight multiplying alpha·TCKD + beta·NCKD", ge=0)
    alpha: float = option(1.0, help="weight α of target-class KD (TCKD)", ge=0)
    beta: float = option(8.0, help="weight β of non-target-class KD (NCKD)", ge=0)
    temperature: float = option(4.0, help="softmax temperature τ", gt=0)
    warmup_epochs: int = option(20, help="linear warm-up of the weight over this many epochs "
                                "(min(epoch / warmup_epochs, 1)); 0 = full weight from the start", ge=0)


@LOSSES.register("dkd")
class DKDLoss(LossMethod):
    Options = DKDOptions
    needs_teacher = True

    def forward(self, inputs: LossInputs) -> dict[str, Tensor]:
        return dkd_terms(
            inputs.student_logits, require_teacher_logits("dkd", inputs), inputs.labels, self.options.temperature
        )

    def weight_scale(self, epoch: int) -> float:
        warmup = self.options.warmup_epochs
        return min(epoch / warmup, 1.0) if warmup > 0 else 1.0

    def combine(self, terms: dict[str, Tensor]) -> Tensor:
        """alpha·TCKD + beta·NCKD (mdistiller's dkd_loss value)."""
        return self.options.alpha * terms["TCKD"] + self.options.beta * terms["NCKD"]
