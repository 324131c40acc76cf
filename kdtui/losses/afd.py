"""Attention-based feature distillation (Ji, Heo, Park, "Show, Attend and Distill", AAAI
2021, arXiv 2102.02973), transcribed from the official code
(clovaai/attention-feature-distillation, ``distill/AFD.py``, ``utils.py``, ``main.py``).

Every student feature s is a candidate for every teacher feature t; a learned attention
decides how much each (t, s) pair is distilled:

* values — the spatial attention map of a feature, mean_c F², flattened and L2-normalised;
  a student map is first adaptive-average-pooled to the teacher map's H×W;
* queries — per teacher feature, ``BN(Linear(mean_hw F_t))`` (qk_dim 128);
* keys — per student feature, ``ReLU(BN(Linear(mean_hw F_s)))``, then one shared
  ``BN(Linear(·))`` to qk_dim · T: a bilinear key for every teacher feature;
* positional terms p_t (T × qk), p_s (S × qk), Xavier-normal;
* α_t = softmax over s of (⟨key_{s,t}, query_t⟩ + ⟨p_t, p_s⟩) / √qk_dim;
* AFD = Σ_t mean_b Σ_s α_{t,s} · mean_hw (v_s − v_t)².

The linear layers are trained with the student (the teacher's query layers too; the
teacher network itself stays frozen). The official code's features (``features:
blocks``, the default) are the networks' ``block_features``: for WRN every block's input
after its BN-ReLU but the first, and the final BN-ReLU output; for ResNets every block's
output. ``features: stages`` uses the three stage maps instead. Official setting
(CIFAR-100, WRN-40-2 → WRN-16-2): CE + 0.9·KD(τ 4) + β·AFD with β = 200.

The learned parts depend on the feature shapes. With ``features: stages`` they are built
by :meth:`AFDLoss.setup`; block features are not given to ``setup``, so they are built at
the engine's dry loss evaluation (the first call, which runs without autograd, before the
optimiser exists). A first call with autograd on is an error, never a silent untrained
module.

Usage::

    method = LOSSES.get("afd")(AFDOptions(weight=200.0))
    with torch.no_grad():
        method(dry_inputs)          # builds the attention from the feature shapes
    terms = method(inputs)          # {"AFD": tensor}
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kdtui.errors import ConfigError
from kdtui.losses.registry import LOSSES
from kdtui.losses.base import LossInputs, LossMethod, no_teacher_error
from kdtui.schema import option


class LinearBN(nn.Module):
    """``nn_bn_relu`` of the official code: Linear, BatchNorm1d, optional ReLU."""

    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__()
        self.linear = nn.Linear(n_in, n_out)
        self.bn = nn.BatchNorm1d(n_out)

    def forward(self, x: Tensor, relu: bool = True) -> Tensor:
        x = self.bn(self.linear(x))
        return torch.relu(x) if relu else x


def spatial_attention(feat: Tensor) -> Tensor:
    """mean_c F² (B×1×H×W)."""
    return feat.pow(2).mean(dim=1, keepdim=True)


class AttentionMeta(nn.Module):
    """The learned part of AFD, for given student and teacher feature shapes (C, H, W)."""

    def __init__(self, student_shapes: list[tuple[int, ...]], teacher_shapes: list[tuple[int, ...]],
                 qk_dim: int) -> None:
        super().__init__()
        self.student_shapes = [tuple(s) for s in student_shapes]
        self.teacher_shapes = [tuple(t) for t in teacher_shapes]
        self.qk_dim = qk_dim
        n_s, n_t = len(student_shapes), len(teacher_shapes)
        self.key_layers = nn.ModuleList(LinearBN(c, qk_dim) for c, _, _ in student_shapes)
        self.bilinear = LinearBN(qk_dim, qk_dim * n_t)
        self.query_layers = nn.ModuleList(LinearBN(c, qk_dim) for c, _, _ in teacher_shapes)
        self.p_t = nn.Parameter(torch.empty(n_t, qk_dim))
        self.p_s = nn.Parameter(torch.empty(n_s, qk_dim))
        nn.init.xavier_normal_(self.p_t)
        nn.init.xavier_normal_(self.p_s)
        # The teacher sizes the student maps are pooled to, once each.
        self.sizes = list(dict.fromkeys((h, w) for _, h, w in teacher_shapes))

    def forward(self, student: list[Tensor], teacher: list[Tensor]) -> Tensor:
        b, n_s, n_t = student[0].shape[0], len(student), len(teacher)
        # Student values: every student map's attention at each teacher size, B×S×(h·w).
        maps = [spatial_attention(f) for f in student]
        values_s = {
            size: F.normalize(
                torch.stack([F.adaptive_avg_pool2d(m, size).flatten(1) for m in maps], dim=1), dim=2)
            for size in self.sizes
        }
        key = torch.stack(
            [layer(f.mean(dim=(2, 3))) for layer, f in zip(self.key_layers, student)], dim=1)
        bilinear_key = self.bilinear(key.view(b * n_s, -1), relu=False).view(b, n_s, n_t, -1)
        query = torch.stack(
            [layer(f.mean(dim=(2, 3)), relu=False) for layer, f in zip(self.query_layers, teacher)],
            dim=1)  # B×T×qk
        with torch.no_grad():
            values_t = [F.normalize(spatial_attention(f).flatten(1), dim=1) for f in teacher]
        logit = torch.einsum("bstq,btq->bts", bilinear_key, query) + self.p_t @ self.p_s.t()
        attention = torch.softmax(logit / math.sqrt(self.qk_dim), dim=2)  # B×T×S
        total = student[0].new_zeros(())
        for i, (f_t, v_t) in enumerate(zip(teacher, values_t)):
            v_s = values_s[tuple(f_t.shape[-2:])]
            diff = (v_s - v_t.unsqueeze(1)).pow(2).mean(dim=2)  # B×S
            total = total + (diff * attention[:, i]).sum(dim=1).mean()
        return total


@dataclass
class AFDOptions:
    weight: float = option(200.0, help="weight β of attention-based feature distillation", ge=0)
    qk_dim: int = option(128, help="size of the attention's queries and keys", ge=1)
    features: str = option(
        "blocks", help="which maps are candidates: blocks (every residual block, as the "
        "official code) or stages (the three stage maps)", choices=("blocks", "stages"))


@LOSSES.register("afd")
class AFDLoss(LossMethod):
    Options = AFDOptions
    needs_teacher = True

    def __init__(self, options: AFDOptions) -> None:
        super().__init__(options)
        # Built from the first feature shapes; a plain attribute until then, so a state
        # dict holding its weights cannot be loaded (and dropped) before it exists.
        self.meta: AttentionMeta | None = None

    def _lists(self, student: list[Tensor] | None,
               teacher: list[Tensor] | None) -> tuple[list[Tensor], list[Tensor]]:
        for side, feats in (("student", student), ("teacher", teacher)):
            if feats is None:
                raise ConfigError(
                    f"afd.features: the {side} network gives no block features (ModelOutput."
                    f"block_features; every built-in network does): use features: stages.")
        if not student or not teacher:
            raise ConfigError("afd needs at least one student and one teacher feature map.")
        for f in (*student, *teacher):
            if f.dim() != 4:
                raise ValueError(f"afd: expected B×C×H×W feature maps, got shape {tuple(f.shape)}")
        return list(student), list(teacher)

    def _build(self, student: list[Tensor], teacher: list[Tensor]) -> None:
        shapes_s = [tuple(f.shape[1:]) for f in student]
        shapes_t = [tuple(f.shape[1:]) for f in teacher]
        if self.meta is not None:
            if (self.meta.student_shapes, self.meta.teacher_shapes) == (shapes_s, shapes_t):
                return
            raise ValueError(
                f"afd: the attention was built for student maps {self.meta.student_shapes} and "
                f"teacher maps {self.meta.teacher_shapes}, but they are now {shapes_s} and {shapes_t}")
        self.meta = AttentionMeta(shapes_s, shapes_t, self.options.qk_dim).to(
            device=student[0].device, dtype=torch.float32)

    def setup(self, student_features: list[Tensor], teacher_features: list[Tensor] | None) -> None:
        """Builds the attention for ``features: stages``; block features are not given here."""
        if teacher_features is None:
            raise no_teacher_error("afd")
        if self.options.features == "stages":
            self._build(*self._lists(student_features, teacher_features))

    def forward(self, inputs: LossInputs) -> dict[str, Tensor]:
        if inputs.teacher_logits is None and inputs.teacher_features is None:
            raise no_teacher_error("afd")
        if self.options.features == "stages":
            student, teacher = self._lists(inputs.student_features, inputs.teacher_features)
        else:
            student, teacher = self._lists(inputs.student_block_features,
                                           inputs.teacher_block_features)
        if self.meta is None:
            if torch.is_grad_enabled():
                raise RuntimeError(
                    "afd: the attention does not exist yet. It is built from the feature shapes at "
                    "the engine's dry loss evaluation (without autograd, before the optimiser is "
                    "built); evaluate the objective once under torch.no_grad() first.")
            self._build(student, teacher)
        elif [tuple(f.shape[1:]) for f in student] != self.meta.student_shapes or \
                [tuple(f.shape[1:]) for f in teacher] != self.meta.teacher_shapes:
            self._build(student, teacher)  # raises: the shapes changed
        with torch.autocast(device_type=student[0].device.type, enabled=False):
            student = [f.float() for f in student]
            teacher = [f.detach().float() for f in teacher]
            return {"AFD": self.meta(student, teacher)}
