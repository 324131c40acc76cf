"""The angular-margin distillation loss (AMD) of Jeon et al. 2023 (arXiv 2302.14130).

Follows the paper; where it is silent (local quadrants are cut from the globally
normalised map and not renormalised) it follows the authors' public code, without that
code's g+l defects.

For each student/teacher layer pair: attention map q = Σ_c F_c², positive map
Qp = q / ‖q‖, negative map Qn = 1 − Qp, margin logits zp = s·cos(m·arccos Qp), zn = s·Qn,
angular feature G = zp − logaddexp(zp, zn); the terms are MSEs between the row-normalised
student and teacher maps (n(x) = x / max(‖x‖, 1e-12), ``F.normalize`` as in the authors'
code): A (on G), P (on zp), N (on zn). Terms are averaged over pairs.
AMD (g+l) mixes in the same terms on the four quadrants of Qp, global : local = 8 : 2; it
needs every map to be at least 4×4 (2×2 quadrants) and says which layer is not.

Usage::

    terms = amd_terms(student_feats, teacher_feats, margin=1.35, scale=64.0, local=False)
    method = LOSSES.get("amd")(AMDOptions(weight=5000.0, terms=["A", "P", "N"]))
    terms = method(inputs)               # {"A": ..., "P": ..., "N": ...}
    value = method.combine(terms)        # mean of the kept terms, times `weight` by the engine
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from kdtui.errors import ConfigError
from kdtui.losses.registry import LOSSES
from kdtui.losses.base import LossInputs, LossMethod, pool_to_smaller, select_pairs, no_teacher_error
from kdtui.schema import option

TERMS = ("A", "P", "N")
NORM_EPS = 1e-6  # guards ‖q‖ of an all-zero attention map in Qp (spec: eps ≈ 1e-6)
ROW_EPS = 1e-12  # n(x) = x / max(‖x‖, 1e-12): F.normalize, as the authors' code
LOCAL_MIN_SIZE = 4  # g+l: each quadrant must be at least 2×2
ACOS_EPS = 1e-7  # keeps arccos (and its gradient) finite at ±1 (spec: ε ≈ 1e-7)
GLOBAL_WEIGHT, LOCAL_WEIGHT = 0.8, 0.2  # the paper's global : local = 8 : 2
EXP_FLOOR = 87.0  # e^−87 ≈ 1.6e-38: still a normal float32


class _ChannelSumOfSquares(torch.autograd.Function):
    """q = Σ_c F_c² (B×1×H×W) as one fused reduction (vector_norm², about half the time of
    F·F then a sum over the largest tensors AMD reads: the teacher's feature maps), with the
    gradient 2·F·∂q written out (one pass instead of autograd's three)."""

    @staticmethod
    def forward(ctx, feat: Tensor) -> Tensor:
        if ctx.needs_input_grad[0]:
            ctx.save_for_backward(feat)
        return torch.linalg.vector_norm(feat, dim=1, keepdim=True).square_()

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        (feat,) = ctx.saved_tensors
        return feat * (2.0 * grad)


def _positive_map(feat: Tensor) -> Tensor:
    """Qp = q / (‖q‖₂ + eps), q = Σ_c F_c² (d = 2), norm over each sample's H×W: B×1×H×W."""
    q = _ChannelSumOfSquares.apply(feat)
    # vector_norm's backward is defined (0) at an all-zero row; sqrt(sum(x²)) would give NaN.
    norm = torch.linalg.vector_norm(q.flatten(1), dim=1).view(-1, 1, 1, 1)
    return q / (norm + NORM_EPS)


def _log1p(y: Tensor) -> Tensor:
    """log(1 + y), accurate for tiny y (Goldberg's trick, with the fast vectorised log):
    PyTorch's log1p and logaddexp are scalar loops on a CPU, several times slower."""
    u = 1.0 + y
    return torch.where(u == 1.0, y, torch.log(u) * (y / (u - 1.0)))


class _AngularMaps(torch.autograd.Function):
    """G, zp, zn from the positive map, with the gradient written out: the same numbers as
    autograd through acos/cos/logaddexp, in a third of the elementwise passes (this is
    most of what AMD costs a CPU step).

    zp = s·cos(m·θ), θ = acos(clamp(Qp)); zn = s·(1 − Qp); d = zn − zp;
    G = −softplus(d) = −(max(d, 0) + log1p(e^−|d|)) (never cancels two ≈64-sized numbers,
    so G ≈ −e^(zn−zp) keeps its digits when zp ≫ zn; nothing overflows).
    Gradient: dzp/dQp = s·m·sin(m·θ)/sin θ (0 where the clamp holds), dzn/dQp = −s,
    dG/dd = −sigmoid(d).
    """

    @staticmethod
    def forward(ctx, qp: Tensor, margin: float, scale: float) -> Tensor:
        clamped = qp.clamp(-1.0 + ACOS_EPS, 1.0 - ACOS_EPS)
        m_theta = margin * torch.acos(clamped)
        zp = scale * torch.cos(m_theta)
        zn = scale * (1.0 - qp)
        d = zn - zp
        # e^−|d|, kept above float32's smallest normal number: subnormal results make exp
        # many times slower on a CPU, and log1p of either is far below d's last digit.
        small = torch.exp(-d.abs().clamp_max_(EXP_FLOOR))
        g = -(d.clamp_min(0.0) + _log1p(small))
        if ctx.needs_input_grad[0]:
            inside = (qp >= -1.0 + ACOS_EPS) & (qp <= 1.0 - ACOS_EPS)
            dzp = (scale * margin) * torch.sin(m_theta) / torch.sqrt(1.0 - clamped * clamped)
            # sigmoid(d) = 1 / (1 + e^−d) for d ≥ 0, e^d / (1 + e^d) otherwise: from e^−|d|.
            sig = torch.where(d >= 0, 1.0, small) / (1.0 + small)
            ctx.save_for_backward(torch.where(inside, dzp, 0.0), sig)
            ctx.scale = scale
        return torch.stack((g, zp, zn))

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None]:
        dzp, sig = ctx.saved_tensors
        grad_g, grad_zp, grad_zn = grad
        # dG/dQp = −sigmoid(d)·(dzn/dQp − dzp/dQp) = sigmoid(d)·(s + dzp/dQp)
        grad_qp = grad_zp * dzp - ctx.scale * grad_zn + grad_g * sig * (ctx.scale + dzp)
        return grad_qp, None, None


def _angular_maps(qp_map: Tensor, margin: float, scale: float) -> Tensor:
    """Step 2: G, zp, zn stacked (3×B×(h·w), in the order of ``TERMS``) from a positive
    map B×1×h×w: one tensor, so every later step is one operation for the three terms."""
    return _AngularMaps.apply(qp_map.flatten(1), margin, scale)


def _row_normalise(x: Tensor) -> Tensor:
    """n(x): each row over h·w (the last dimension) divided by max(‖x‖, 1e-12), i.e.
    ``F.normalize(x, dim=-1)``.

    The authors' code normalises G, zp and zn this way; an added eps (x / (‖x‖ + 1e-6))
    would shrink rows whose norm is small (small scale s, or a map with one cell).
    """
    return F.normalize(x, p=2.0, dim=-1, eps=ROW_EPS)


def _quadrant_blocks(x: Tensor, h: int, w: int) -> Tensor:
    """(…, h·w) maps → (…, 4, ⌈h/2⌉·⌈w/2⌉): the four quadrants, top-left, top-right,
    bottom-left, bottom-right, as rows of one tensor (a reshape: no loop over quadrants).

    Split at h//2, w//2: on odd sizes the bottom/right quadrants get the extra row/column
    (7×7 → 3×3, 3×4, 4×3, 4×4), so every position belongs to exactly one quadrant; the
    smaller quadrants are padded with zeros, which change no norm and no squared difference.
    """
    lead = x.shape[:-1]
    x = x.reshape(*lead, h, w)
    top, left = h // 2, w // 2
    if h % 2:  # a zero row ends the top half, which is then as tall as the bottom one
        x = torch.cat((x[..., :top, :], x.new_zeros(*lead, 1, w), x[..., top:, :]), dim=-2)
    if w % 2:
        x = torch.cat((x[..., :left], x.new_zeros(*lead, x.shape[-2], 1), x[..., left:]), dim=-1)
    half_h, half_w = h - top, w - left
    x = x.reshape(*lead, 2, half_h, 2, half_w).transpose(-3, -2)
    return x.reshape(*lead, 4, half_h * half_w)


def _pair_terms(qs: Tensor, qt: Tensor, margin: float, scale: float, local: bool) -> Tensor:
    """Step 3 for one layer pair: A, P, N (a tensor of 3, in the order of ``TERMS``) as MSEs
    of the row-normalised maps (mean over B × h·w); with ``local``, 0.8 × that + 0.2 × the
    mean over the four quadrants of the same MSE taken on each quadrant, normalised on its own.

    The angular maps are elementwise in Qp, so a quadrant's maps are the cut-out part of the
    whole map's: they are computed once, and the teacher's without autograd.
    """
    student = _angular_maps(qs, margin, scale)
    with torch.no_grad():
        teacher = _angular_maps(qt, margin, scale)
        teacher_global = _row_normalise(teacher)
    terms = (_row_normalise(student) - teacher_global).square().mean(dim=(1, 2))
    if not local:
        return terms
    h, w = qs.shape[-2:]
    with torch.no_grad():
        teacher_local = _row_normalise(_quadrant_blocks(teacher, h, w))
        # Positions per quadrant, counted on the device (no host-to-device copy in the step).
        sizes = _quadrant_blocks(qs.new_ones(1, h * w), h, w).sum(dim=-1)          # 1×4
    squared = (_row_normalise(_quadrant_blocks(student, h, w)) - teacher_local).square()
    # Each quadrant's MSE: its squared differences summed, over B × its size.
    per_quadrant = squared.sum(dim=(1, 3)) / (qs.shape[0] * sizes)                # 3×4
    return GLOBAL_WEIGHT * terms + LOCAL_WEIGHT * per_quadrant.mean(dim=1)


def amd_terms(
    student_feats: Sequence[Tensor],
    teacher_feats: Sequence[Tensor],
    margin: float = 1.35,
    scale: float = 64.0,
    local: bool = False,
) -> dict[str, Tensor]:
    """The A, P, N terms (float32 scalars), each averaged over the layer pairs.

    ``student_feats[i]`` and ``teacher_feats[i]`` are B×C×H×W maps at matching depths;
    channel counts may differ, spatial sizes are pooled to the smaller one. With
    ``local=True`` each term is 0.8·global + 0.2·(mean over the four quadrants of the
    globally normalised Qp); every (pooled) map must then be at least 4×4, else a
    :class:`ConfigError` names the layer and its size. Gradient reaches the student
    features only.
    """
    pairs = select_pairs("AMD", student_feats, teacher_feats, None)

    margin, scale = float(margin), float(scale)
    total = pairs[0][0].new_zeros(len(TERMS), dtype=torch.float32)
    # float32 throughout, autocast off: s = 64 puts e^64 and 1 − 1e-7 out of reach of bf16/fp16.
    with torch.autocast(device_type=pairs[0][0].device.type, enabled=False):
        for index, (fs, ft) in enumerate(pairs):
            if fs.dim() != 4 or ft.dim() != 4:
                raise ValueError(
                    f"AMD pair {index}: expected B×C×H×W maps, got shapes "
                    f"{tuple(fs.shape)} and {tuple(ft.shape)}"
                )
            if fs.shape[0] != ft.shape[0]:
                raise ValueError(
                    f"AMD pair {index}: batch sizes differ ({fs.shape[0]} vs {ft.shape[0]})"
                )
            raw_sizes = (tuple(fs.shape[-2:]), tuple(ft.shape[-2:]))
            fs = fs.float()
            with torch.no_grad():
                ft = ft.detach().float()
            fs, ft = pool_to_smaller(fs, ft)
            qs = _positive_map(fs)
            with torch.no_grad():
                qt = _positive_map(ft)

            if local:
                h, w = qs.shape[-2:]
                if h < LOCAL_MIN_SIZE or w < LOCAL_MIN_SIZE:
                    size = f"{h}×{w}"
                    if raw_sizes[0] != raw_sizes[1]:
                        size += (f" (student {raw_sizes[0][0]}×{raw_sizes[0][1]}, teacher "
                                 f"{raw_sizes[1][0]}×{raw_sizes[1][1]}, pooled to the smaller)")
                    raise ConfigError(
                        f"amd.local: AMD g+l splits each feature map into four quadrants and "
                        f"needs maps of at least {LOCAL_MIN_SIZE}×{LOCAL_MIN_SIZE}, but layer "
                        f"{index} is {size}: set amd.local to false (global AMD) or use "
                        f"networks whose feature maps are at least {LOCAL_MIN_SIZE}×"
                        f"{LOCAL_MIN_SIZE} (larger input images)."
                    )
            pair = _pair_terms(qs, qt, margin, scale, local)
            total = total + pair
    return dict(zip(TERMS, total / len(pairs)))


@dataclass
class AMDOptions:
    weight: float = option(5000.0, help="weight γ of the angular-margin loss", ge=0)
    margin: float = option(
        1.35,
        help="angular margin m in cos(m·θ) of the positive map (the paper sweeps 1–2)",
        ge=1.0,
        le=3.0,
    )
    scale: float = option(64.0, help="scale s of the positive and negative logits", gt=0)
    local: bool = option(
        False, help="AMD g+l: add the four-quadrant local term (global:local = 8:2); "
        "needs feature maps of at least 4×4"
    )
    terms: list[str] = option(
        ["A", "P", "N"],
        help="which of A, P, N to keep (the paper's ablation)",
        choices=TERMS,
        nonempty=True,
    )


@LOSSES.register("amd")
class AMDLoss(LossMethod):
    Options = AMDOptions
    needs_teacher = True

    @classmethod
    def label(cls, name: str, options: Any) -> str:
        local = isinstance(options, dict) and options.get("local")
        return f"{name}(g+l)" if local else f"{name}(g)"

    def __init__(self, options: AMDOptions) -> None:
        super().__init__(options)
        terms = list(options.terms)
        # The schema checks choices/non-empty when built from YAML; repeat here for direct use.
        if not terms:
            raise ConfigError("amd.terms: must not be empty; keep at least one of A, P, N.")
        unknown = [t for t in terms if t not in TERMS]
        if unknown:
            raise ConfigError(f"amd.terms: got {unknown!r}, expected only A, P, N.")
        duplicates = sorted({t for t in terms if terms.count(t) > 1})
        if duplicates:
            raise ConfigError(
                f"amd.terms: {', '.join(duplicates)} listed more than once in {terms!r}; "
                f"list each of A, P, N at most once."
            )
        # Canonical A, P, N order so run logs and plots are stable whatever the preset's order.
        self.kept = tuple(t for t in TERMS if t in terms)

    def forward(self, inputs: LossInputs) -> dict[str, Tensor]:
        if inputs.teacher_features is None:
            raise no_teacher_error("amd")
        opts = self.options
        terms = amd_terms(
            inputs.student_features,
            inputs.teacher_features,
            margin=opts.margin,
            scale=opts.scale,
            local=opts.local,
        )
        return {k: terms[k] for k in self.kept}

    def combine(self, terms: dict[str, Tensor]) -> Tensor:
        """Mean of the kept terms: (A + P + N) / 3 with all three, as the paper's L_AM."""
        return torch.stack(list(terms.values())).mean()
