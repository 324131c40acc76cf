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
from typing import Any, ClassVar, Sequence

import torch
import torch.nn.functional as F

from kdtui.errors import ConfigError
from torch import Tensor, nn


@dataclass
class LossInputs:
    """What one training step gives the loss methods.

    ``teacher_*`` are ``None`` when the run has no teacher; they were computed without
    autograd, so no gradient can reach the teacher. ``*_embedding`` (B×D, the vector the
    classifier sees), ``*_last_map`` (the last map before global pooling) and
    ``*_block_features`` (one activated map per block, for AFD) are the networks'
    :class:`~kdtui.models.base.ModelOutput` fields of the same names. Build it
    from the two outputs with :meth:`from_outputs`.
    """

    student_logits: Tensor
    student_features: list[Tensor]
    labels: Tensor
    teacher_logits: Tensor | None = None
    teacher_features: list[Tensor] | None = None
    epoch: int = 1   # 1-based epoch being trained, for methods with a warm-up
    student_embedding: Tensor | None = None
    teacher_embedding: Tensor | None = None
    student_last_map: Tensor | None = None
    teacher_last_map: Tensor | None = None
    student_block_features: list[Tensor] | None = None
    teacher_block_features: list[Tensor] | None = None
    # Mixup/CutMix: the batch mixes each image with the one whose label is mixed_labels;
    # labels weigh mix_weight (λ) in the targets, mixed_labels 1 − λ.
    mixed_labels: Tensor | None = None
    mix_weight: float = 1.0
    # The samples' positions in the training set, for methods that set needs_indices (CRD);
    # None otherwise, and in the engine's dry run.
    indices: Tensor | None = None

    @classmethod
    def from_outputs(
        cls, student: Any, teacher: Any | None, labels: Tensor, epoch: int = 1,
        mixed_labels: Tensor | None = None, mix_weight: float = 1.0, indices: Tensor | None = None,
    ) -> "LossInputs":
        """From the student's and (optional) teacher's ``ModelOutput``: every field."""
        return cls(
            student_logits=student.logits,
            student_features=student.features,
            labels=labels,
            teacher_logits=None if teacher is None else teacher.logits,
            teacher_features=None if teacher is None else teacher.features,
            epoch=epoch,
            student_embedding=getattr(student, "embedding", None),
            teacher_embedding=None if teacher is None else getattr(teacher, "embedding", None),
            student_last_map=getattr(student, "last_map", None),
            teacher_last_map=None if teacher is None else getattr(teacher, "last_map", None),
            student_block_features=getattr(student, "block_features", None),
            teacher_block_features=(
                None if teacher is None else getattr(teacher, "block_features", None)
            ),
            mixed_labels=mixed_labels,
            mix_weight=mix_weight,
            indices=indices,
        )


class LossMethod(nn.Module):
    """Base class: subclasses set ``Options`` and ``needs_teacher`` and implement ``forward``."""

    Options: ClassVar[type]
    needs_teacher: ClassVar[bool] = True
    needs_indices: ClassVar[bool] = False   # wants LossInputs.indices (training-set positions)

    def __init__(self, options: Any) -> None:
        super().__init__()
        self.options = options

    def forward(self, inputs: LossInputs) -> dict[str, Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def label(cls, name: str, options: Any) -> str:
        """How runs tables name this method (registered as ``name``) with these options
        (its config mapping)."""
        return name

    def weight_scale(self, epoch: int) -> float:
        """Factor on the method's weight during ``epoch`` (1-based); 1 unless it warms up."""
        return 1.0

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

    def setup_data(self, inputs: LossInputs, train_labels: Tensor | None) -> None:
        """Optional, after :meth:`setup` and at the same moment: for parts sized by the dry
        run's whole outputs (embeddings) or by the training set (CRD's memory bank, from
        ``train_labels`` in index order). The default does nothing."""

    def combine(self, terms: dict[str, Tensor]) -> Tensor:
        """The value this method's weight multiplies; by default the sum of its terms."""
        return torch.stack(list(terms.values())).sum()


def no_teacher_error(name: str) -> ConfigError:
    """The error of loss ``name`` run without a teacher (raised by whichever input it misses)."""
    return ConfigError(f"Loss '{name}' needs a teacher, but the run has none: add a teacher or "
                       f"drop '{name}'.")


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


def check_layers(name: str, layers: Sequence[int] | None) -> None:
    """Options check shared by methods with a ``layers`` list (the schema cannot see duplicates)."""
    if layers is None:
        return
    if not layers:
        raise ConfigError(f"{name}.layers: must not be empty; e.g. [-1] for the last feature map.")
    duplicates = sorted({i for i in layers if list(layers).count(i) > 1})
    if duplicates:
        raise ConfigError(f"{name}.layers: {duplicates} listed more than once in {list(layers)!r}.")


def select_pairs(
    name: str,
    student_features: Sequence[Tensor],
    teacher_features: Sequence[Tensor] | None,
    layers: Sequence[int] | None,
) -> list[tuple[Tensor, Tensor]]:
    """The (student, teacher) feature maps at ``layers`` (all pairs when ``None``).

    Raises :class:`ConfigError` when there is no teacher, the two networks give different
    numbers of feature maps (depths would not match), or an index is out of range.
    """
    student, teacher = list(student_features), teacher_features
    if teacher is None:
        raise no_teacher_error(name)
    teacher = list(teacher)
    if len(student) != len(teacher):
        raise ConfigError(
            f"{name} pairs student and teacher feature maps layer by layer, but the student "
            f"gives {len(student)} maps and the teacher {len(teacher)}: choose models with the "
            f"same number of stages."
        )
    if not student:
        raise ConfigError(f"{name} needs at least one student/teacher feature-map pair; got none.")
    indices = range(len(student)) if layers is None else layers
    bad = [i for i in indices if not -len(student) <= i < len(student)]
    if bad:
        raise ConfigError(
            f"{name}.layers: {bad} out of range; the networks give {len(student)} feature maps, "
            f"so use 0..{len(student) - 1} (or -1 for the last)."
        )
    return [(student[i], teacher[i]) for i in indices]


def require_teacher_logits(name: str, inputs: LossInputs) -> Tensor:
    """The teacher's logits, or a clear error for a method used without a teacher."""
    if inputs.teacher_logits is None:
        raise no_teacher_error(name)
    return inputs.teacher_logits
