"""Attention Transfer (Zagoruyko & Komodakis, ICLR 2017, arXiv 1612.03928).

For each student/teacher layer pair: attention map a = normalize(mean_c |F_c|^p), flattened
per sample (p = 2), and the pair's loss is mean((a_s − a_t)²) over B × H·W; the term AT is
the sum over the pairs. This is RepDistiller's ``Attention`` (``at(f) =
F.normalize(f.pow(p).mean(1).view(B, -1))``, ``(at(f_s) - at(f_t)).pow(2).mean()``, summed
over the three WRN group outputs, β = 1000); |·| makes odd/fractional p follow the paper's
Σ|A|^p and changes nothing for p = 2. Channel counts may differ; when the spatial sizes
differ the larger map is adaptive-average-pooled to the smaller one.

Usage::

    value = at_loss(student_feats, teacher_feats, p=2.0)
    method = LOSSES.get("at")(ATOptions(weight=1000.0))
    terms = method(inputs)          # {"AT": tensor}

This module also holds the small helpers the other feature-based baselines share
(:func:`pool_to_smaller`, :func:`select_pairs`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from kdtui.losses.registry import LOSSES
from kdtui.losses.base import LossInputs, LossMethod, check_layers, pool_to_smaller, select_pairs
from kdtui.schema import option


def attention_map(feat: Tensor, p: float = 2.0) -> Tensor:
    """normalize(mean_c |F|^p) flattened: B×(H·W), unit L2 norm per sample (eps 1e-12)."""
    a = feat.pow(2) if p == 2.0 else feat.abs().pow(p)
    return F.normalize(a.mean(dim=1).flatten(1), dim=1)


def at_loss(
    student_feats: Sequence[Tensor], teacher_feats: Sequence[Tensor], p: float = 2.0
) -> Tensor:
    """Σ over pairs of mean((a_s − a_t)²).

    float32 with autocast off; gradient reaches the student features only.
    """
    student_feats, teacher_feats = list(student_feats), list(teacher_feats)
    total = student_feats[0].new_zeros((), dtype=torch.float32)
    with torch.autocast(device_type=student_feats[0].device.type, enabled=False):
        for index, (fs, ft) in enumerate(zip(student_feats, teacher_feats)):
            if fs.dim() != 4 or ft.dim() != 4 or fs.shape[0] != ft.shape[0]:
                raise ValueError(
                    f"AT pair {index}: expected B×C×H×W maps with the same batch size, got "
                    f"shapes {tuple(fs.shape)} and {tuple(ft.shape)}"
                )
            fs = fs.float()
            with torch.no_grad():
                ft = ft.detach().float()
            fs, ft = pool_to_smaller(fs, ft)
            with torch.no_grad():
                at_t = attention_map(ft, p)
            total = total + (attention_map(fs, p) - at_t).pow(2).mean()
    return total


@dataclass
class ATOptions:
    weight: float = option(1000.0, help="weight β of attention transfer", ge=0)
    p: float = option(2.0, help="exponent p of the attention map mean_c |F|^p", gt=0)
    layers: list[int] | None = option(
        None, help="indices of the feature-map pairs to use (null: all), e.g. [1, 2]"
    )


@LOSSES.register("at")
class ATLoss(LossMethod):
    Options = ATOptions
    needs_teacher = True

    def __init__(self, options: ATOptions) -> None:
        super().__init__(options)
        check_layers("at", options.layers)

    def forward(self, inputs: LossInputs) -> dict[str, Tensor]:
        pairs = select_pairs(
            "at", inputs.student_features, inputs.teacher_features, self.options.layers
        )
        return {"AT": at_loss([s for s, _ in pairs], [t for _, t in pairs], p=self.options.p)}
