"""Attentive feature distillation, the distillation half of AFDS (Wang, Gao, Zhao, Li, Dou,
Xu, "Pay Attention to Features, Transfer Learn Faster CNNs", ICLR 2020).

No official code was found, so this follows the paper: a feature-map distance in which
a learned predictor weights every channel of the teacher (the paper's source network),

    AFDS = Σ_l mean_b Σ_c ρ_lc · ‖r_l(F_s^l)_c − F_t,c^l‖²₂   (squared L2 over H×W),
    ρ_l  = softmax_c(W_l · GAP(F_t^l) + b_l),

over the stage feature pairs l (``layers``; all by default). The paper fine-tunes a copy
of the source network, so student and teacher channels correspond one to one; for
distillation between different widths r_l is a learned 1×1 conv + BN from the student's
channels to the teacher's (kdtui's addition; used at equal widths too, so every pair is
treated the same), and the larger map of a pair is adaptive-average-pooled to the
smaller, as for AT. The predictors and adapters are trained with the student (built by
:meth:`AFDSLoss.setup`). Attentive feature *selection* (AFS), the paper's run-time
channel pruning of the target network, is not a loss and is not implemented. The paper's
regulariser strength for this term is taken as 0.01 (DELTA's, on which AFDS builds).

Usage::

    method = LOSSES.get("afds")(AFDSOptions(weight=0.01))
    method.setup(student_out.features, teacher_out.features)
    terms = method(inputs)          # {"AFDS": tensor}
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from kdtui.losses.registry import LOSSES
from kdtui.losses.base import LossInputs, LossMethod, check_layers, pool_to_smaller, select_pairs
from kdtui.schema import option


def afds_pair(student: Tensor, teacher: Tensor, adapter: nn.Module, predictor: nn.Linear) -> Tensor:
    """mean_b Σ_c ρ_c ‖r(F_s)_c − F_t,c‖² for one pair (float32 maps, teacher detached)."""
    student, teacher = pool_to_smaller(student, teacher)
    rho = torch.softmax(predictor(teacher.mean(dim=(2, 3))), dim=1)  # B×C_t
    distance = (adapter(student) - teacher).pow(2).sum(dim=(2, 3))  # B×C_t
    return (rho * distance).sum(dim=1).mean()


@dataclass
class AFDSOptions:
    weight: float = option(0.01, help="weight of the attentive feature distillation term", ge=0)
    layers: list[int] | None = option(
        None, help="indices of the feature-map pairs to distil (null: all)", nonempty=True)


@LOSSES.register("afds")
class AFDSLoss(LossMethod):
    Options = AFDSOptions
    needs_teacher = True

    def __init__(self, options: AFDSOptions) -> None:
        super().__init__(options)
        check_layers("afds", options.layers)
        # Built by setup(); plain attributes until then (see FitNet).
        self.adapters: nn.ModuleList | None = None
        self.predictors: nn.ModuleList | None = None
        self._shapes: list[tuple[tuple[int, ...], tuple[int, ...]]] | None = None

    def _pairs(self, student: list[Tensor], teacher: list[Tensor] | None) -> list[tuple[Tensor, Tensor]]:
        pairs = select_pairs("afds", student, teacher, self.options.layers)
        for fs, ft in pairs:
            if fs.dim() != 4 or ft.dim() != 4:
                raise ValueError(f"afds: expected B×C×H×W feature maps, got shapes "
                                 f"{tuple(fs.shape)} and {tuple(ft.shape)}")
        return pairs

    def setup(self, student_features: list[Tensor], teacher_features: list[Tensor] | None) -> None:
        """Build one adapter and one channel-importance predictor per pair (idempotent)."""
        pairs = self._pairs(student_features, teacher_features)
        shapes = [(tuple(fs.shape[1:]), tuple(ft.shape[1:])) for fs, ft in pairs]
        if self._shapes is not None:
            if shapes == self._shapes:
                return
            raise ValueError(f"afds: built for feature shapes {self._shapes}, but they are now {shapes}")
        device = pairs[0][0].device
        self.adapters = nn.ModuleList(
            nn.Sequential(nn.Conv2d(fs.shape[1], ft.shape[1], 1, bias=False), nn.BatchNorm2d(ft.shape[1]))
            for fs, ft in pairs).to(device=device, dtype=torch.float32)
        self.predictors = nn.ModuleList(
            nn.Linear(ft.shape[1], ft.shape[1]) for _, ft in pairs).to(device=device, dtype=torch.float32)
        self._shapes = shapes

    def forward(self, inputs: LossInputs) -> dict[str, Tensor]:
        pairs = self._pairs(inputs.student_features, inputs.teacher_features)
        if self.adapters is None or self.predictors is None:
            raise RuntimeError(
                "afds: the adapters do not exist yet; the engine must call objective.setup("
                "student_features, teacher_features) once, before building the optimiser")
        with torch.autocast(device_type=pairs[0][0].device.type, enabled=False):
            total = pairs[0][0].new_zeros((), dtype=torch.float32)
            for (fs, ft), adapter, predictor in zip(pairs, self.adapters, self.predictors):
                total = total + afds_pair(fs.float(), ft.detach().float(), adapter, predictor)
        return {"AFDS": total}
