"""The contract every loss method follows.

A method is one small ``nn.Module`` in its own file, registered by name in
:data:`kdtui.losses.LOSSES`. It receives the batch's :class:`LossInputs` and returns a
dict of *named, unweighted* terms (``{"KD": ...}``, ``{"A": ..., "P": ..., "N": ...}``);
those names are what the run store records and the dashboard plots. ``combine`` turns
the terms into the single value the method's weight multiplies (a sum by default).

Usage::

    @LOSSES.register("kd")
    class KDLoss(LossMethod):
        Options = KDOptions            # dataclass of options; must have `weight`
        needs_teacher = True

        def forward(self, inputs: LossInputs) -> dict[str, Tensor]:
            return {"KD": kd_divergence(inputs.student_logits, inputs.teacher_logits, ...)}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass
class LossInputs:
    """What one training step gives the loss methods.

    ``teacher_*`` are ``None`` when the run has no teacher; they were computed without
    autograd, so no gradient can reach the teacher.
    """

    student_logits: Tensor
    student_features: list[Tensor]
    labels: Tensor
    teacher_logits: Tensor | None = None
    teacher_features: list[Tensor] | None = None


class LossMethod(nn.Module):
    """Base class: subclasses set ``Options`` and ``needs_teacher`` and implement ``forward``."""

    Options: ClassVar[type]
    needs_teacher: ClassVar[bool] = True

    def __init__(self, options: Any) -> None:
        super().__init__()
        self.options = options

    def forward(self, inputs: LossInputs) -> dict[str, Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    def setup(
        self, student_features: list[Tensor], teacher_features: list[Tensor] | None
    ) -> None:
        """Optional: build learned parts whose shapes depend on the networks' feature maps.

        The engine calls it once per run, with the feature maps of one dry forward pass
        (no autograd), after the objective is on its device and *before* the optimiser is
        built and a checkpoint is restored, so that what it creates is trained and saved.
        Must be idempotent for the same shapes. Most methods need nothing: the default
        does nothing.
        """

    def combine(self, terms: dict[str, Tensor]) -> Tensor:
        """The value this method's weight multiplies; by default the sum of its terms."""
        return torch.stack(list(terms.values())).sum()


def pool_to_smaller(fs: Tensor, ft: Tensor) -> tuple[Tensor, Tensor]:
    """Adaptive-average-pool a B×C×H×W student/teacher pair to the smaller spatial size.

    Each dimension goes to the smaller of the two: "pool the larger map" whenever one map
    is at least as large in both H and W (as AT and AMD do), and still defined otherwise.
    """
    (hs, ws), (ht, wt) = fs.shape[-2:], ft.shape[-2:]
    size = (min(hs, ht), min(ws, wt))
    if (hs, ws) != size:
        fs = F.adaptive_avg_pool2d(fs, size)
    if (ht, wt) != size:
        ft = F.adaptive_avg_pool2d(ft, size)
    return fs, ft
