"""Attentive feature distillation, the distillation half of AFDS (Wang, Zhao, Li, Dou, Xu,
Gao, "Pay Attention to Features, Transfer Learn Faster CNNs", ICLR 2020).

The authors published no code. This follows the public implementation that distillation
benchmarks use, AberHu/Knowledge-Distillation-Zoo ``kd_losses/afd.py`` and ``train_kd.py``
(@65470c8), which keeps the paper's idea — a predictor computes, from the teacher's
features, how strongly each channel is transferred — but replaces the paper's predictor,
which that author found unstable, with a squeeze-and-excitation block:

    ρ_l    = σ(W₂ ReLU(W₁ GAP(F_t^l) + b₁) + b₂),   ρ_l ← ρ_l / Σ_c ρ_lc
    F̂      = F / ‖F‖₂ per channel (over H×W, + 1e-6)
    AFDS   = 1/L Σ_l mean_b Σ_c ρ_lc · mean_hw (r_l(F̂_s^l)_c − F̂_t,c^l)²

over the stage feature pairs l (``layers``; all by default), W₁ mapping C to
``attention_factor``·C channels. The reference distils between networks of equal widths;
for different widths r_l is a learned 1×1 conv + BN from the student's channels to the
teacher's (kdtui's addition; the identity at equal widths, as the reference), applied
before the per-channel normalisation, and the larger map of a pair is pooled to the
smaller, as for AT. The predictors and adapters are trained with the student (built by
:meth:`AFDSLoss.setup`). Attentive feature *selection* (AFS), the paper's run-time
channel pruning, is not a loss and is not implemented. Weight 500: the reference's
CIFAR-10 setting (``--lambda_kd 500``), added to CE.

Usage::

    method = LOSSES.get("afds")(AFDSOptions(weight=500))
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

EPS = 1e-6  # the reference's eps in the per-channel normalisation


class ChannelAttention(nn.Module):
    """ρ of one pair: a squeeze-and-excitation block on the teacher's pooled map, through a
    sigmoid and normalised to sum 1 over the channels of each sample."""

    def __init__(self, channels: int, factor: float) -> None:
        super().__init__()
        hidden = max(1, int(channels * factor))
        self.squeeze = nn.Conv2d(channels, hidden, 1)
        self.excite = nn.Conv2d(hidden, channels, 1)
        for conv in (self.squeeze, self.excite):  # the reference's initialisation
            nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(conv.bias)

    def forward(self, teacher: Tensor) -> Tensor:
        pooled = teacher.mean(dim=(2, 3), keepdim=True)
        rho = torch.sigmoid(self.excite(torch.relu(self.squeeze(pooled))).flatten(1))  # B×C
        return rho / rho.sum(dim=1, keepdim=True)


def unit_channels(feat: Tensor) -> Tensor:
    """Each channel's H×W map divided by its L2 norm."""
    return feat / (torch.linalg.vector_norm(feat, dim=(2, 3), keepdim=True) + EPS)


def afds_pair(student: Tensor, teacher: Tensor, adapter: nn.Module, attention: ChannelAttention) -> Tensor:
    """mean_b Σ_c ρ_c · mean_hw (F̂_s − F̂_t)² for one pair (float32 maps, teacher detached)."""
    student, teacher = pool_to_smaller(student, teacher)
    rho = attention(teacher)
    distance = (unit_channels(adapter(student)) - unit_channels(teacher)).pow(2).mean(dim=(2, 3))
    return (rho * distance).sum(dim=1).mean()


def adapter_for(student_channels: int, teacher_channels: int) -> nn.Module:
    if student_channels == teacher_channels:
        return nn.Identity()
    return nn.Sequential(nn.Conv2d(student_channels, teacher_channels, 1, bias=False),
                         nn.BatchNorm2d(teacher_channels))


@dataclass
class AFDSOptions:
    weight: float = option(500.0, help="weight of the attentive feature distillation term "
                           "(the reference's CIFAR-10 λ)", ge=0)
    attention_factor: float = option(
        1.0, help="hidden channels of the attention block, as a fraction of the teacher's", gt=0)
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
        self.attentions: nn.ModuleList | None = None
        self._shapes: list[tuple[tuple[int, ...], tuple[int, ...]]] | None = None

    def _pairs(self, student: list[Tensor], teacher: list[Tensor] | None) -> list[tuple[Tensor, Tensor]]:
        pairs = select_pairs("afds", student, teacher, self.options.layers)
        for fs, ft in pairs:
            if fs.dim() != 4 or ft.dim() != 4:
                raise ValueError(f"afds: expected B×C×H×W feature maps, got shapes "
                                 f"{tuple(fs.shape)} and {tuple(ft.shape)}")
        return pairs

    def setup(self, student_features: list[Tensor], teacher_features: list[Tensor] | None) -> None:
        """Build one adapter and one channel-attention block per pair (idempotent)."""
        pairs = self._pairs(student_features, teacher_features)
        shapes = [(tuple(fs.shape[1:]), tuple(ft.shape[1:])) for fs, ft in pairs]
        if self._shapes is not None:
            if shapes == self._shapes:
                return
            raise ValueError(f"afds: built for feature shapes {self._shapes}, but they are now {shapes}")
        device = pairs[0][0].device
        self.adapters = nn.ModuleList(adapter_for(fs.shape[1], ft.shape[1]) for fs, ft in pairs
                                      ).to(device=device, dtype=torch.float32)
        self.attentions = nn.ModuleList(ChannelAttention(ft.shape[1], self.options.attention_factor)
                                        for _, ft in pairs).to(device=device, dtype=torch.float32)
        self._shapes = shapes

    def forward(self, inputs: LossInputs) -> dict[str, Tensor]:
        pairs = self._pairs(inputs.student_features, inputs.teacher_features)
        if self.adapters is None or self.attentions is None:
            raise RuntimeError(
                "afds: the adapters do not exist yet; the engine must call objective.setup("
                "student_features, teacher_features) once, before building the optimiser")
        with torch.autocast(device_type=pairs[0][0].device.type, enabled=False):
            total = pairs[0][0].new_zeros((), dtype=torch.float32)
            for (fs, ft), adapter, attention in zip(pairs, self.adapters, self.attentions):
                total = total + afds_pair(fs.float(), ft.detach().float(), adapter, attention)
        return {"AFDS": total / len(pairs)}
