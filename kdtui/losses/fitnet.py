"""FitNet hints (Romero et al., ICLR 2015, arXiv 1412.6550), trained jointly as in RepDistiller.

The term FitNet = MSE(r(F_s), F_t) on one student/teacher feature pair, where r is a learned
1×1-conv regressor from the student's to the teacher's channel count, followed by BatchNorm
(``bn: true``, the default, as RepDistiller's ``ConvReg``; no ReLU, since kdtui's feature maps
are the residual-group outputs before the final BN-ReLU and can be negative). ``bn: false``
gives a plain 1×1 conv with bias; at β = 100 it diverged within three SGD steps (lr 0.05,
WRN-16-1 ← WRN-16-2) where the BN version trained, so keep BN unless you lower the weight.
If the spatial sizes differ, the larger map is adaptive-average-pooled to the smaller one
first (before the regressor).

The pair defaults to ``layer: 1``, the middle of the three WRN group outputs: RepDistiller's
``hint_layer = 2`` indexes its feature list [stem, group1, group2, group3, pooled], i.e. also
the second group's output. Weight β = 100 is RepDistiller's. The paper's separate hint
pre-training stage is not done: the hint is trained jointly with the other terms.

The regressor's channel counts are only known from real feature maps, so it is built by the
:meth:`FitNetLoss.setup` hook, which the engine calls once with a dry forward pass before it
builds the optimiser (and before restoring a checkpoint); its parameters are then trained
and saved with the objective. ``forward`` before ``setup`` is an error.

Usage::

    method = LOSSES.get("fitnet")(FitNetOptions(weight=100.0, layer=1))
    method.setup(student_out.features, teacher_out.features)   # builds the regressor
    terms = method(inputs)          # {"FitNet": tensor}
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kdtui.errors import ConfigError
from kdtui.losses import LOSSES
from kdtui.losses.base import LossInputs, LossMethod, pool_to_smaller, select_pairs
from kdtui.schema import option


@dataclass
class FitNetOptions:
    weight: float = option(100.0, help="weight β of the FitNet hint loss", ge=0)
    layer: int = option(
        1, help="index of the feature-map pair used as the hint (1: the middle WRN group; -1: last)"
    )
    bn: bool = option(
        True, help="BatchNorm after the 1×1-conv regressor (as RepDistiller's ConvReg)"
    )


@LOSSES.register("fitnet")
class FitNetLoss(LossMethod):
    Options = FitNetOptions
    needs_teacher = True

    def __init__(self, options: FitNetOptions) -> None:
        super().__init__(options)
        # Built by setup(). A plain attribute until then (not a registered None child), so
        # loading a state dict that holds regressor weights before setup() fails loudly
        # ("unexpected keys") instead of dropping them.
        self.regressor: nn.Sequential | None = None

    def _pair(self, student: list[Tensor], teacher: list[Tensor] | None) -> tuple[Tensor, Tensor]:
        ((fs, ft),) = select_pairs("fitnet", student, teacher, [self.options.layer])
        if fs.dim() != 4 or ft.dim() != 4:
            raise ValueError(
                f"fitnet: expected B×C×H×W feature maps, got shapes {tuple(fs.shape)} and "
                f"{tuple(ft.shape)}"
            )
        return fs, ft

    def setup(self, student_features: list[Tensor], teacher_features: list[Tensor] | None) -> None:
        """Build the student→teacher channel regressor (a no-op if it already fits)."""
        fs, ft = self._pair(student_features, teacher_features)
        c_s, c_t = fs.shape[1], ft.shape[1]
        if self.regressor is not None:
            conv = self.regressor[0]
            if (conv.in_channels, conv.out_channels) == (c_s, c_t):
                return
            raise ValueError(
                f"fitnet: the regressor was built for {conv.in_channels}→{conv.out_channels} "
                f"channels, but the features now have {c_s}→{c_t}"
            )
        layers: list[nn.Module] = [nn.Conv2d(c_s, c_t, kernel_size=1, bias=not self.options.bn)]
        if self.options.bn:
            layers.append(nn.BatchNorm2d(c_t))
        self.regressor = nn.Sequential(*layers).to(device=fs.device, dtype=torch.float32)

    def forward(self, inputs: LossInputs) -> dict[str, Tensor]:
        fs, ft = self._pair(inputs.student_features, inputs.teacher_features)
        if self.regressor is None:
            raise RuntimeError(
                "fitnet: the regressor does not exist yet; the engine must call "
                "objective.setup(student_features, teacher_features) once, with a dry forward "
                "pass, before building the optimiser"
            )
        # float32, autocast off: the reported value does not depend on the autocast dtype.
        with torch.autocast(device_type=fs.device.type, enabled=False):
            fs = fs.float()
            with torch.no_grad():
                ft = ft.detach().float()
            fs, ft = pool_to_smaller(fs, ft)
            return {"FitNet": F.mse_loss(self.regressor(fs), ft)}
