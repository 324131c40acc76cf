"""FitNet hints (Romero et al., ICLR 2015, arXiv 1412.6550), trained jointly as in RepDistiller.

The term FitNet = MSE(r(F_s), F_t) on one student/teacher feature pair, where r is
RepDistiller's ``ConvReg`` (models/util.py), transcribed: a convolution chosen from the two
maps' heights, then BatchNorm and ReLU —

* student map twice as tall as the teacher's: 3×3 conv, stride 2, padding 1;
* student map half as tall: 4×4 transposed conv, stride 2, padding 1;
* otherwise, student at least as tall: a conv of kernel (1 + H_s − H_t, 1 + W_s − W_t), no
  padding — a 1×1 conv when the sizes are equal;

every conv with a bias, ``BatchNorm2d(C_t)`` and ``ReLU`` after it. Any other size ratio
(student smaller, not by half) is refused, as ConvReg refuses it. No pooling: the
regressor maps the student's size to the teacher's.

The pair defaults to ``layer: 1``, the middle of the three maps: RepDistiller's
``--hint_layer 2`` indexes its list [stem, map 1, map 2, map 3, ..., pooled], so it is the
second of kdtui's three feature maps (the middle WRN group). Weight β = 100 and CE + hint
are RepDistiller's ``--distill hint -r 1 -a 0 -b 100``. The paper's separate hint
pre-training stage is not done: the hint is trained jointly with the other terms.

The regressor's shapes are only known from real feature maps, so it is built by the
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
from kdtui.losses.registry import LOSSES
from kdtui.losses.base import LossInputs, LossMethod, select_pairs
from kdtui.schema import option


def conv_regressor(student_shape: torch.Size, teacher_shape: torch.Size) -> nn.Sequential:
    """RepDistiller's ``ConvReg(s_shape, t_shape)``: conv (by the heights), BN, ReLU."""
    _, c_s, h_s, w_s = student_shape
    _, c_t, h_t, w_t = teacher_shape
    if h_s == 2 * h_t:
        conv: nn.Module = nn.Conv2d(c_s, c_t, kernel_size=3, stride=2, padding=1)
    elif h_s * 2 == h_t:
        conv = nn.ConvTranspose2d(c_s, c_t, kernel_size=4, stride=2, padding=1)
    elif h_s >= h_t and w_s >= w_t:
        conv = nn.Conv2d(c_s, c_t, kernel_size=(1 + h_s - h_t, 1 + w_s - w_t))
    else:
        raise ConfigError(
            f"fitnet: the hint regressor (RepDistiller's ConvReg) maps a student map to the "
            f"teacher's size by a stride-2 conv (twice as large), a transposed conv (half as "
            f"large) or a plain conv (at least as large), but the student's map is {h_s}×{w_s} "
            f"and the teacher's {h_t}×{w_t}: choose another fitnet.layer."
        )
    return nn.Sequential(conv, nn.BatchNorm2d(c_t), nn.ReLU())


@dataclass
class FitNetOptions:
    weight: float = option(100.0, help="weight β of the FitNet hint loss", ge=0)
    layer: int = option(
        1, help="index of the feature-map pair used as the hint (1: the middle WRN group; -1: last)"
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
        self._shapes: tuple[tuple[int, ...], tuple[int, ...]] | None = None

    def _pair(self, student: list[Tensor], teacher: list[Tensor] | None) -> tuple[Tensor, Tensor]:
        ((fs, ft),) = select_pairs("fitnet", student, teacher, [self.options.layer])
        if fs.dim() != 4 or ft.dim() != 4:
            raise ValueError(
                f"fitnet: expected B×C×H×W feature maps, got shapes {tuple(fs.shape)} and "
                f"{tuple(ft.shape)}"
            )
        return fs, ft

    def setup(self, student_features: list[Tensor], teacher_features: list[Tensor] | None) -> None:
        """Build the student→teacher regressor (a no-op if it already fits these shapes)."""
        fs, ft = self._pair(student_features, teacher_features)
        shapes = (tuple(fs.shape[1:]), tuple(ft.shape[1:]))
        if self.regressor is not None:
            if self._shapes == shapes:
                return
            raise ValueError(
                f"fitnet: the regressor was built for student/teacher maps {self._shapes}, but "
                f"the features are now {shapes}"
            )
        regressor = conv_regressor(fs.shape, ft.shape)
        self.regressor = regressor.to(device=fs.device, dtype=torch.float32)
        self._shapes = shapes

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
            with torch.no_grad():
                ft = ft.detach().float()
            return {"FitNet": F.mse_loss(self.regressor(fs.float()), ft)}
