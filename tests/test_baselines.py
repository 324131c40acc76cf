"""Tests of the classic KD baselines: AT, SP, FitNet, PKT, RKD, DKD.

Run: python -m pytest tests/test_baselines.py -q

Each method is checked against a plain float64 numpy re-derivation of its published
formula (RepDistiller's AT/SP/PKT/RKD/hint code, mdistiller's dkd_loss), sharing no code
with kdtui.losses, and against literal numbers worked out by hand (in the comments).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from kdtui.engine.objective import Objective
from kdtui.errors import ConfigError
from kdtui.losses import LOSSES
from kdtui.losses.at import ATLoss, ATOptions, at_loss
from kdtui.losses.base import LossInputs, LossMethod
from kdtui.losses.dkd import DKDLoss, DKDOptions, dkd_terms
from kdtui.losses.fitnet import FitNetLoss, FitNetOptions
from kdtui.losses.pkt import PKTLoss, PKTOptions, pkt_loss
from kdtui.losses.rkd import RKDLoss, RKDOptions, rkd_terms
from kdtui.losses.sp import SPLoss, SPOptions, sp_loss
from kdtui.schema import build

# --------------------------------------------------------------------------- references


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().double().numpy()


def _block_pool(f: np.ndarray, h: int, w: int) -> np.ndarray:
    b, c, H, W = f.shape
    assert H % h == 0 and W % w == 0
    return f.reshape(b, c, h, H // h, w, W // w).mean(axis=(3, 5))


def _unit_rows(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    return x / np.maximum(np.sqrt((x**2).sum(axis=-1, keepdims=True)), eps)


def ref_at(student, teacher) -> float:
    total = 0.0
    for fs, ft in zip(student, teacher):
        fs, ft = _np(fs), _np(ft)
        h, w = min(fs.shape[2], ft.shape[2]), min(fs.shape[3], ft.shape[3])
        fs, ft = _block_pool(fs, h, w), _block_pool(ft, h, w)
        a_s = _unit_rows((fs**2).mean(axis=1).reshape(len(fs), -1))
        a_t = _unit_rows((ft**2).mean(axis=1).reshape(len(ft), -1))
        total += float(((a_s - a_t) ** 2).mean())
    return total


def ref_sp(student, teacher) -> float:
    total = 0.0
    for fs, ft in zip(student, teacher):
        b = fs.shape[0]
        fs, ft = _np(fs).reshape(b, -1), _np(ft).reshape(b, -1)
        g_s, g_t = _unit_rows(fs @ fs.T), _unit_rows(ft @ ft.T)
        total += float(((g_s - g_t) ** 2).sum() / b**2)
    return total


def ref_pkt(es, et, eps=1e-7) -> float:
    def probs(x):
        x = x / (np.sqrt((x**2).sum(axis=1, keepdims=True)) + eps)
        k = (x @ x.T + 1) / 2
        return k / k.sum(axis=1, keepdims=True)

    p_s, p_t = probs(_np(es)), probs(_np(et))
    return float((p_t * np.log((p_t + eps) / (p_s + eps))).mean())


def _smooth_l1(a, b) -> float:
    d = np.abs(a - b)
    return float(np.where(d < 1, 0.5 * d**2, d - 0.5).mean())


def ref_rkd(es, et) -> tuple[float, float]:
    def dist(e):
        d = np.sqrt(((e[:, None, :] - e[None, :, :]) ** 2).sum(axis=2))
        return d / d[d > 0].mean()

    def angles(e):
        diff = e[None, :, :] - e[:, None, :]  # [i, j] = e_j − e_i
        u = _unit_rows(diff)
        return np.einsum("ijd,ikd->ijk", u, u).ravel()

    es, et = _np(es), _np(et)
    return _smooth_l1(dist(es), dist(et)), _smooth_l1(angles(es), angles(et))


def ref_dkd(ls, lt, y, tau) -> tuple[float, float]:
    """mdistiller's dkd_loss, term by term, in float64 (KL via xlogy: 0·log 0 = 0)."""
    ls, lt, y = _np(ls) / tau, _np(lt) / tau, y.numpy()
    b, n = ls.shape
    gt = np.zeros((b, n), dtype=bool)
    gt[np.arange(b), y] = True

    def softmax(z):
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    def cat_mask(p):
        return np.stack([(p * gt).sum(axis=1), (p * ~gt).sum(axis=1)], axis=1)

    def log_softmax(z):
        z = z - z.max(axis=1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=1, keepdims=True))

    def kl_sum(p, log_q):  # F.kl_div(log_q, p, reduction="sum"): xlogy(p, p) − p·log_q
        safe = np.where(p > 0, p, 1.0)
        return float((p * np.log(safe) - np.where(p > 0, p * log_q, 0.0)).sum())

    tckd = kl_sum(cat_mask(softmax(lt)), np.log(cat_mask(softmax(ls)))) * tau**2 / b
    nckd = kl_sum(softmax(lt - 1000.0 * gt), log_softmax(ls - 1000.0 * gt)) * tau**2 / b
    return tckd, nckd


# --------------------------------------------------------------------------- helpers


def _feats(seed: int, shapes, requires_grad=False) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(*s, generator=g).requires_grad_(requires_grad) for s in shapes]


def _inputs(student_feats=(), teacher_feats=None, student_logits=None, teacher_logits=None,
            labels=None, epoch=1, embeddings=None, last_maps=None) -> LossInputs:
    """Unless given, each side's embedding is its last feature map averaged over H×W and
    its last map before pooling is that map (as for a WRN)."""
    if student_logits is None:
        student_logits = torch.tensor([[2.0, 0.5, -1.0], [0.0, 1.0, 0.0]])
    student_feats = list(student_feats)
    teacher_feats = list(teacher_feats) if teacher_feats is not None else None

    def pooled(feats):
        return feats[-1].mean(dim=(2, 3)) if feats else None

    if embeddings is None:
        embeddings = (pooled(student_feats), pooled(teacher_feats))
    if last_maps is None:
        last_maps = (student_feats[-1] if student_feats else None,
                     teacher_feats[-1] if teacher_feats else None)
    return LossInputs(
        student_logits=student_logits,
        student_features=student_feats,
        labels=labels if labels is not None else torch.tensor([0, 1]),
        teacher_logits=teacher_logits,
        teacher_features=teacher_feats,
        epoch=epoch,
        student_embedding=embeddings[0],
        teacher_embedding=embeddings[1],
        student_last_map=last_maps[0],
        teacher_last_map=last_maps[1],
    )


# Three stages, different channel counts (and a different spatial size at stage 0).
S_SHAPES = [(4, 3, 8, 8), (4, 5, 4, 4), (4, 6, 2, 2)]
T_SHAPES = [(4, 6, 4, 4), (4, 8, 4, 4), (4, 12, 2, 2)]


def _fitnet(student, teacher, **opts) -> FitNetLoss:
    method = FitNetLoss(FitNetOptions(**opts))
    method.setup(student, teacher)
    return method


# One factory per feature method: a ready-to-call method (FitNet is set up).
FEATURE_METHODS = {
    "at": lambda s, t: ATLoss(ATOptions()),
    "sp": lambda s, t: SPLoss(SPOptions(layers=[0, 1, 2])),
    "fitnet": lambda s, t: _fitnet(s, t),
    "pkt": lambda s, t: PKTLoss(PKTOptions()),
    "rkd": lambda s, t: RKDLoss(RKDOptions()),
}


# --------------------------------------------------------------------------- golden: by hand


def test_at_hand_example():
    # Student map [1, 0] (both channels) → a_s = (1, 0); teacher [1, 1] → a_t = (1, 1)/√2.
    # mean((a_s − a_t)²) = ((1 − 1/√2)² + ½)/2 = 1 − 1/√2.
    s = torch.tensor([[[[1.0, 0.0]], [[-1.0, 0.0]]]])
    t = torch.tensor([[[[1.0, 1.0]]]])
    got = at_loss([s], [t])
    assert got.item() == pytest.approx(1 - 1 / math.sqrt(2), rel=1e-6)
    assert 1 - 1 / math.sqrt(2) == pytest.approx(0.292893, abs=1e-6)
    # Summed (not averaged) over pairs.
    assert at_loss([s, s], [t, t]).item() == pytest.approx(2 * 0.292893, abs=2e-6)


def test_sp_hand_example():
    # f_s = I → G_s = I; f_t = [[1,0],[1,0]] → G_t = all ones → rows (1, 1)/√2.
    # ‖G_s − G_t‖² = 2(1 − 1/√2)² + 2·½ = 4 − 2√2; / B² = 1 − √2/2 = 0.292893.
    s = torch.tensor([[1.0, 0.0], [0.0, 1.0]]).view(2, 2, 1, 1)
    t = torch.tensor([[1.0, 0.0], [1.0, 0.0]]).view(2, 1, 2, 1)
    assert sp_loss([s], [t]).item() == pytest.approx(1 - math.sqrt(2) / 2, rel=1e-6)


def test_pkt_hand_example():
    # Student orthogonal: K = [[1, ½], [½, 1]] → rows (⅔, ⅓); teacher parallel: rows (½, ½).
    # Σ p_t log(p_t/p_s) over the 4 entries = 2·½(ln ¾ + ln 3/2) = ln 1.125; mean = ln(1.125)/4.
    es = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    et = torch.tensor([[1.0, 0.0], [2.0, 0.0]])
    assert pkt_loss(es, et).item() == pytest.approx(math.log(1.125) / 4, rel=1e-5)
    assert math.log(1.125) / 4 == pytest.approx(0.0294458, abs=1e-7)


def test_rkd_hand_example():
    # Student: right triangle (0,0), (1,0), (0,1); teacher collinear (0,0), (1,0), (2,0).
    # Distances / mean of the positive ones: student (1, 1, √2)·3/(2+√2) = (0.87868, 0.87868,
    # 1.24264); teacher (1, 2, 1)·¾ = (0.75, 1.5, 0.75). All |diffs| < 1, so smooth-L1 = ½d²,
    # each pair twice over the 9 entries: RKD_D = (a² + b² + c²)/9 = 0.0716991.
    # Angles at each vertex (the 2 off-diagonal j≠k entries; j = k gives 1 on both sides,
    # j or k = i gives 0 on both): student (0, 1/√2, 1/√2), teacher (1, −1, 1) → smooth-L1
    # 0.5, √2/2 + ½, ½(1 − √2/2)², which sum to 1.75; RKD_A = 2·1.75/27 = 3.5/27.
    es = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    et = torch.tensor([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0]])
    k = 3 / (2 + math.sqrt(2))
    a, b, c = k - 0.75, k - 1.5, k * math.sqrt(2) - 0.75
    want_d = (a * a + b * b + c * c) / 9
    got = rkd_terms(es, et)
    assert want_d == pytest.approx(0.0716991, abs=1e-7)
    assert got["RKD_D"].item() == pytest.approx(want_d, rel=1e-5)
    assert got["RKD_A"].item() == pytest.approx(3.5 / 27, rel=1e-6)
    method = RKDLoss(RKDOptions())
    assert method.combine(got).item() == pytest.approx(25 * want_d + 50 * 3.5 / 27, rel=1e-5)


def test_dkd_hand_example():
    # τ = 2, label 0; teacher z/τ = (ln 2, ln 2, 0) → p_t = (2, 2, 1)/5; student uniform.
    # TCKD/τ² = KL((.4, .6) ‖ (⅓, ⅔)) = .4 ln 1.2 + .6 ln .9 = 0.0097123;
    # NCKD/τ² = KL((⅔, ⅓) ‖ (½, ½)) = ⅔ ln(4/3) + ⅓ ln(2/3) = 0.0566330.
    tau = 2.0
    ls = torch.zeros(1, 3)
    lt = torch.tensor([[2 * math.log(2), 2 * math.log(2), 0.0]])
    got = dkd_terms(ls, lt, torch.tensor([0]), temperature=tau)
    tckd = 0.4 * math.log(1.2) + 0.6 * math.log(0.9)
    nckd = 2 / 3 * math.log(4 / 3) + 1 / 3 * math.log(2 / 3)
    assert (tckd, nckd) == pytest.approx((0.0097123, 0.0566330), abs=1e-7)
    assert got["TCKD"].item() == pytest.approx(4 * tckd, rel=1e-5)
    assert got["NCKD"].item() == pytest.approx(4 * nckd, rel=1e-5)
    method = DKDLoss(DKDOptions(alpha=0.5, beta=3.0, temperature=tau))
    assert method.combine(got).item() == pytest.approx(4 * (0.5 * tckd + 3 * nckd), rel=1e-5)


# --------------------------------------------------------------------------- golden: reference


@pytest.mark.parametrize("seed", [0, 1])
def test_at_and_sp_match_reference(seed):
    student, teacher = _feats(seed, S_SHAPES), _feats(seed + 10, T_SHAPES)
    assert at_loss(student, teacher).item() == pytest.approx(ref_at(student, teacher), rel=1e-5)
    assert sp_loss(student, teacher).item() == pytest.approx(ref_sp(student, teacher), rel=1e-5)
    # Methods: AT uses all pairs by default, SP only the last.
    inputs = _inputs(student, teacher)
    assert ATLoss(ATOptions())(inputs)["AT"].item() == pytest.approx(
        ref_at(student, teacher), rel=1e-5)
    assert SPLoss(SPOptions())(inputs)["SP"].item() == pytest.approx(
        ref_sp(student[-1:], teacher[-1:]), rel=1e-5)
    assert ATLoss(ATOptions(layers=[0, 2]))(inputs)["AT"].item() == pytest.approx(
        ref_at(student[::2], teacher[::2]), rel=1e-5)


@pytest.mark.parametrize("seed", [0, 1])
def test_pkt_and_rkd_match_reference_on_the_embeddings(seed):
    """RepDistiller feeds PKT and RKD ``feat[-1]``, the vector the classifier sees
    (train_student.py / helper/loops.py, commit b84f547c5db6a35318d4671d7d5c4de74c822403),
    not a pooled stage map: the embeddings here differ from the pooled last maps."""
    student, teacher = _feats(seed, S_SHAPES), _feats(seed + 10, T_SHAPES)
    es, et = _feats(seed + 30, [(4, 7), (4, 11)])
    inputs = _inputs(student, teacher, embeddings=(es, et))
    assert PKTLoss(PKTOptions())(inputs)["PKT"].item() == pytest.approx(ref_pkt(es, et), rel=1e-4)
    d, a = ref_rkd(es, et)
    terms = RKDLoss(RKDOptions())(inputs)
    assert list(terms) == ["RKD_D", "RKD_A"]
    assert terms["RKD_D"].item() == pytest.approx(d, rel=1e-5)
    assert terms["RKD_A"].item() == pytest.approx(a, rel=1e-5)
    # Plain B×D embeddings, different widths.
    es, et = _feats(seed + 20, [(6, 5), (6, 9)])
    assert pkt_loss(es, et).item() == pytest.approx(ref_pkt(es, et), rel=1e-4)
    got = rkd_terms(es, et)
    assert (got["RKD_D"].item(), got["RKD_A"].item()) == pytest.approx(ref_rkd(es, et), rel=1e-5)


def test_sp_default_is_the_last_map_before_pooling():
    """RepDistiller's SP takes ``[feat[-2]]``: for VGG block 4 and for MobileNetV2 its 2×2
    stage, which are not kdtui's features[-1]; ``layers`` still selects feature pairs."""
    student, teacher = _feats(40, S_SHAPES), _feats(41, T_SHAPES)
    last_s, last_t = _feats(42, [(4, 7, 2, 2), (4, 9, 4, 4)])
    inputs = _inputs(student, teacher, last_maps=(last_s, last_t))
    assert SPLoss(SPOptions())(inputs)["SP"].item() == pytest.approx(
        ref_sp([last_s], [last_t]), rel=1e-5)
    assert SPLoss(SPOptions(layers=[-1]))(inputs)["SP"].item() == pytest.approx(
        ref_sp(student[-1:], teacher[-1:]), rel=1e-5)


def test_pkt_rkd_and_sp_from_model_outputs():
    """LossInputs.from_outputs carries each network's embedding and last map."""
    from kdtui.models import build_model

    torch.manual_seed(0)
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        t_out = build_model("vgg8", 10).eval()(x)
    s_out = build_model("mobilenetv2", 10).eval()(x)
    inputs = LossInputs.from_outputs(s_out, t_out, torch.tensor([0, 1, 2, 3]), epoch=3)
    assert inputs.epoch == 3 and inputs.student_embedding is s_out.embedding
    assert inputs.teacher_last_map is t_out.last_map and tuple(inputs.student_last_map.shape) == (4, 160, 2, 2)
    assert PKTLoss(PKTOptions())(inputs)["PKT"].item() == pytest.approx(
        ref_pkt(s_out.embedding, t_out.embedding), rel=1e-3)  # a ~5e-6 value, float32
    assert SPLoss(SPOptions())(inputs)["SP"].item() == pytest.approx(
        ref_sp([s_out.last_map], [t_out.last_map]), rel=1e-5)
    no_teacher = LossInputs.from_outputs(s_out, None, torch.tensor([0, 1, 2, 3]))
    assert no_teacher.teacher_embedding is None and no_teacher.teacher_last_map is None
    for method in (PKTLoss(PKTOptions()), RKDLoss(RKDOptions()), SPLoss(SPOptions())):
        with pytest.raises(ConfigError, match="teacher"):
            method(no_teacher)


def test_embedding_methods_say_when_a_network_gives_none():
    student, teacher = _feats(43, S_SHAPES), _feats(44, T_SHAPES)
    inputs = _inputs(student, teacher, teacher_logits=torch.zeros(2, 3),
                     embeddings=(None, None), last_maps=(None, None))
    for method in (PKTLoss(PKTOptions()), RKDLoss(RKDOptions())):
        with pytest.raises(ConfigError, match="embedding"):
            method(inputs)
    with pytest.raises(ConfigError, match="last_map"):
        SPLoss(SPOptions())(inputs)


@pytest.mark.parametrize("tau", [1.0, 4.0])
def test_dkd_matches_reference(tau):
    g = torch.Generator().manual_seed(3)
    ls, lt = torch.randn(6, 10, generator=g) * 3, torch.randn(6, 10, generator=g) * 3
    y = torch.randint(0, 10, (6,), generator=g)
    got = dkd_terms(ls, lt, y, temperature=tau)
    tckd, nckd = ref_dkd(ls, lt, y, tau)
    assert got["TCKD"].item() == pytest.approx(tckd, rel=1e-4)
    assert got["NCKD"].item() == pytest.approx(nckd, rel=1e-4)
    method = DKDLoss(DKDOptions(temperature=tau))
    terms = method(_inputs(student_logits=ls, teacher_logits=lt, labels=y))
    assert list(terms) == ["TCKD", "NCKD"]
    assert method.combine(terms).item() == pytest.approx(tckd + 8 * nckd, rel=1e-4)


def test_dkd_confident_logits_stay_finite():
    # A student so sure of the label that p_other underflows float32: log(Σ p) would be −inf.
    ls = torch.tensor([[400.0, 0.0, 0.0]], requires_grad=True)
    lt = torch.tensor([[1.0, 2.0, 0.0]])
    terms = dkd_terms(ls, lt, torch.tensor([0]), temperature=1.0)
    sum(terms.values()).backward()
    assert all(torch.isfinite(v) for v in terms.values()) and torch.isfinite(ls.grad).all()


def test_dkd_warms_up_linearly_like_mdistiller():
    # mdistiller: loss_dkd = min(epoch / warmup, 1) · (α·TCKD + β·NCKD), epoch 1-based.
    from kdtui.engine.objective import Objective

    ls, lt, y = torch.randn(6, 5, generator=torch.Generator().manual_seed(3)), torch.randn(6, 5), torch.arange(6) % 5
    full = Objective({"dkd": DKDOptions(weight=2.0, warmup_epochs=0)})
    warm = Objective({"dkd": DKDOptions(weight=2.0, warmup_epochs=20)})
    total_full, terms_full = full(_inputs(student_logits=ls, teacher_logits=lt, labels=y))
    for epoch, factor in ((1, 0.05), (5, 0.25), (20, 1.0), (35, 1.0)):
        total, terms = warm(_inputs(student_logits=ls, teacher_logits=lt, labels=y, epoch=epoch))
        assert total.item() == pytest.approx(factor * total_full.item(), rel=1e-6)
        assert terms["NCKD"].item() == pytest.approx(terms_full["NCKD"].item())  # terms unscaled


class RepDistillerConvReg(torch.nn.Module):
    """RepDistiller's ``ConvReg`` as it is (HobbitLong/RepDistiller, models/util.py,
    commit b84f547c5db6a35318d4671d7d5c4de74c822403), the reference for kdtui's regressor."""

    def __init__(self, s_shape, t_shape, use_relu=True):
        super().__init__()
        self.use_relu = use_relu
        s_N, s_C, s_H, s_W = s_shape
        t_N, t_C, t_H, t_W = t_shape
        if s_H == 2 * t_H:
            self.conv = torch.nn.Conv2d(s_C, t_C, kernel_size=3, stride=2, padding=1)
        elif s_H * 2 == t_H:
            self.conv = torch.nn.ConvTranspose2d(s_C, t_C, kernel_size=4, stride=2, padding=1)
        elif s_H >= t_H:
            self.conv = torch.nn.Conv2d(s_C, t_C, kernel_size=(1+s_H-t_H, 1+s_W-t_W))
        else:
            raise NotImplementedError('student size {}, teacher size {}'.format(s_H, t_H))
        self.bn = torch.nn.BatchNorm2d(t_C)
        self.relu = torch.nn.ReLU(inplace=True)

    def forward(self, x):
        x = self.conv(x)
        if self.use_relu:
            return self.relu(self.bn(x))
        else:
            return self.bn(x)


# (student map, teacher map) at the hint layer: student larger (stride-2 conv), smaller
# (transposed conv), equal (1×1 conv), larger by 2 rows/columns (3×3 conv, no padding).
CONVREG_CASES = {
    "student_twice": ((4, 5, 8, 8), (4, 8, 4, 4)),
    "student_half": ((4, 5, 4, 4), (4, 8, 8, 8)),
    "equal": ((4, 5, 4, 4), (4, 8, 4, 4)),
    "student_larger": ((4, 5, 6, 6), (4, 8, 4, 4)),
}


@pytest.mark.parametrize("case", list(CONVREG_CASES))
def test_fitnet_regressor_is_repdistillers_convreg(case):
    s_shape, t_shape = CONVREG_CASES[case]
    student, teacher = _feats(4, S_SHAPES), _feats(5, T_SHAPES)
    student[1], teacher[1] = _feats(6, [s_shape, t_shape])
    torch.manual_seed(0)
    method = _fitnet(student, teacher)
    reference = RepDistillerConvReg(s_shape, t_shape)
    conv, bn, relu = method.regressor
    assert type(conv) is type(reference.conv) and isinstance(bn, torch.nn.BatchNorm2d)
    assert isinstance(relu, torch.nn.ReLU)
    for attr in ("in_channels", "out_channels", "kernel_size", "stride", "padding"):
        assert getattr(conv, attr) == getattr(reference.conv, attr), attr
    assert conv.bias is not None
    # Same weights: kdtui's Sequential (0: conv, 1: BN) against ConvReg's conv / bn.
    state = {k.replace("0.", "conv.", 1).replace("1.", "bn.", 1): v
             for k, v in method.regressor.state_dict().items()}
    reference.load_state_dict(state)
    want = torch.nn.functional.mse_loss(reference(student[1]), teacher[1])  # training-mode BN
    got = method(_inputs(student, teacher))["FitNet"]
    assert got.item() == pytest.approx(want.item(), rel=1e-6)


def test_fitnet_refuses_sizes_convreg_cannot_map():
    student, teacher = _feats(7, S_SHAPES), _feats(8, T_SHAPES)
    student[1], teacher[1] = _feats(9, [(4, 5, 2, 2), (4, 8, 8, 8)])
    with pytest.raises(ConfigError, match="2×2 and the teacher's 8×8"):
        _fitnet(student, teacher)


# --------------------------------------------------------------------------- zero loss


def test_identical_inputs_give_zero():
    feats = _feats(8, S_SHAPES)
    student = [f.clone().requires_grad_(True) for f in feats]
    inputs = _inputs(student, feats)
    assert ATLoss(ATOptions())(inputs)["AT"].item() == 0.0
    assert SPLoss(SPOptions(layers=[0, 1, 2]))(inputs)["SP"].item() == 0.0
    assert PKTLoss(PKTOptions())(inputs)["PKT"].item() == pytest.approx(0.0, abs=1e-9)
    assert all(v.item() == 0.0 for v in RKDLoss(RKDOptions())(inputs).values())
    logits = torch.randn(5, 7)
    y = torch.randint(0, 7, (5,))
    terms = dkd_terms(logits.clone().requires_grad_(True), logits, y)
    assert terms["TCKD"].item() == 0.0 and terms["NCKD"].item() == 0.0


# --------------------------------------------------------------------------- gradients


@pytest.mark.parametrize("name", list(FEATURE_METHODS))
def test_gradient_reaches_student_only(name):
    student = _feats(10, S_SHAPES, requires_grad=True)
    teacher = _feats(11, T_SHAPES, requires_grad=True)
    method = FEATURE_METHODS[name](student, teacher)
    terms = method(_inputs(student, teacher))
    method.combine(terms).backward()
    used = range(3) if name in ("at", "sp") else [1] if name == "fitnet" else [2]
    for i in used:
        g = student[i].grad
        assert g is not None and torch.isfinite(g).all() and g.abs().sum() > 0, i
    assert all(f.grad is None for f in teacher)
    # Only the teacher requiring grad: nothing in the result tracks autograd (bar FitNet's
    # own regressor parameters).
    if name != "fitnet":
        out = method(_inputs([f.detach() for f in student], teacher))
        assert not any(v.requires_grad for v in out.values())


def test_dkd_gradient_reaches_student_only():
    ls = torch.randn(4, 5, requires_grad=True)
    lt = torch.randn(4, 5, requires_grad=True)
    terms = dkd_terms(ls, lt, torch.tensor([0, 1, 2, 3]))
    (terms["TCKD"] + 8 * terms["NCKD"]).backward()
    assert torch.isfinite(ls.grad).all() and ls.grad.abs().sum() > 0
    assert lt.grad is None


def test_fitnet_regressor_gets_gradients_and_is_a_parameter():
    student = _feats(12, S_SHAPES, requires_grad=True)
    teacher = _feats(13, T_SHAPES)
    method = _fitnet(student, teacher)
    assert [type(m).__name__ for m in method.regressor] == ["Conv2d", "BatchNorm2d", "ReLU"]
    assert method.regressor[0].in_channels == 5 and method.regressor[0].out_channels == 8
    assert method.regressor[0].kernel_size == (1, 1)  # equal sizes: ConvReg's 1×1 conv
    params = dict(method.named_parameters())
    assert set(params) == {"regressor.0.weight", "regressor.0.bias", "regressor.1.weight",
                           "regressor.1.bias"}
    method(_inputs(student, teacher))["FitNet"].backward()
    for name, p in params.items():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name
    # The Objective exposes the regressor to the optimiser.
    objective = Objective({"fitnet": FitNetOptions()})
    assert not list(objective.parameters())  # before setup: nothing yet
    objective.methods["fitnet"].setup(student, teacher)
    assert len(list(objective.parameters())) == 4  # conv weight and bias, BN weight and bias


def test_fitnet_state_dict_round_trip(tmp_path):
    student, teacher = _feats(14, S_SHAPES), _feats(15, T_SHAPES)
    inputs = _inputs(student, teacher)
    torch.manual_seed(0)
    trained = Objective({"fitnet": FitNetOptions()})
    trained.methods["fitnet"].setup(student, teacher)
    for _ in range(2):  # two SGD steps (BN also updates its running statistics)
        trained.zero_grad()
        trained(inputs)[0].backward()
        with torch.no_grad():
            for p in trained.parameters():
                p -= 0.1 * p.grad
    path = tmp_path / "objective.pt"
    torch.save(trained.state_dict(), path)
    want = trained(inputs)[0].item()

    torch.manual_seed(1)  # a different initialisation, overwritten by the load
    restored = Objective({"fitnet": FitNetOptions()})
    with pytest.raises(RuntimeError):  # the keys exist only after setup
        restored.load_state_dict(torch.load(path, weights_only=True))
    restored.methods["fitnet"].setup(student, teacher)
    assert restored(inputs)[0].item() != want
    restored.load_state_dict(torch.load(path, weights_only=True))
    assert restored(inputs)[0].item() == want


def test_fitnet_setup_contract():
    student, teacher = _feats(16, S_SHAPES), _feats(17, T_SHAPES)
    method = FitNetLoss(FitNetOptions())
    with pytest.raises(RuntimeError, match="setup"):
        method(_inputs(student, teacher))
    method.setup(student, teacher)
    regressor = method.regressor
    method.setup(student, teacher)  # idempotent for the same shapes
    assert method.regressor is regressor
    with pytest.raises(ValueError, match=r"\(5, 4, 4\), \(8, 4, 4\)"):
        method.setup(student, [torch.randn(4, 6, 4, 4)] * 3)
    with pytest.raises(ConfigError, match="teacher"):
        FitNetLoss(FitNetOptions()).setup(student, None)
    with pytest.raises(ConfigError, match="out of range"):
        FitNetLoss(FitNetOptions(layer=3)).setup(student, teacher)
    # The base hook does nothing.
    assert LossMethod.setup(ATLoss(ATOptions()), student, teacher) is None


# --------------------------------------------------------------------------- autocast


def test_bf16_autocast_gives_float32_equal_to_float32():
    student = [f.bfloat16() for f in _feats(18, S_SHAPES)]
    teacher = [f.bfloat16() for f in _feats(19, T_SHAPES)]
    ls, lt = torch.randn(4, 10).bfloat16(), torch.randn(4, 10).bfloat16()
    y = torch.tensor([0, 3, 5, 9])
    f32 = [f.float() for f in student], [f.float() for f in teacher]
    methods = {name: make(*f32) for name, make in FEATURE_METHODS.items()}
    methods["dkd"] = DKDLoss(DKDOptions())
    emb = tuple(f[-1].mean(dim=(2, 3)) for f in (student, teacher))  # bf16, as a network's
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = {n: m(_inputs(student, teacher, ls, lt, y, embeddings=emb)) for n, m in methods.items()}
    want = {n: m(_inputs(*f32, ls.float(), lt.float(), y, embeddings=tuple(e.float() for e in emb)))
            for n, m in methods.items()}
    for name in methods:
        for k, v in got[name].items():
            assert v.dtype == torch.float32, (name, k)
            assert torch.isfinite(v) and v.item() == want[name][k].item(), (name, k)


# --------------------------------------------------------------------------- shapes & errors


def test_at_pools_the_larger_map_either_way():
    big, small = _feats(20, [(2, 3, 8, 8), (2, 6, 4, 4)])
    pooled = torch.nn.functional.adaptive_avg_pool2d(big, 4)
    for s, t, ps, pt in [(big, small, pooled, small), (small, big, small, pooled)]:
        got = at_loss([s], [t]).item()
        assert got == pytest.approx(at_loss([ps], [pt]).item(), rel=1e-6)
        assert got == pytest.approx(ref_at([s], [t]), rel=1e-5)
    # Neither map dominates (8×4 vs 4×8): each dimension goes to the smaller one, 4×4.
    tall, wide = _feats(28, [(2, 3, 8, 4), (2, 5, 4, 8)])
    assert at_loss([tall], [wide]).item() == pytest.approx(ref_at([tall], [wide]), rel=1e-5)


def test_rkd_single_sample_is_zero_and_differentiable():
    es = torch.randn(1, 4, requires_grad=True)
    terms = rkd_terms(es, torch.randn(1, 6))
    assert all(v.item() == 0.0 for v in terms.values())
    sum(terms.values()).backward()
    assert torch.isfinite(es.grad).all()


def test_missing_teacher_and_mismatched_layers_raise():
    student = _feats(21, S_SHAPES)
    for method in (ATLoss(ATOptions()), SPLoss(SPOptions()), PKTLoss(PKTOptions()),
                   RKDLoss(RKDOptions()), DKDLoss(DKDOptions())):
        with pytest.raises(ConfigError, match="teacher"):
            method(_inputs(student))
    teacher = _feats(22, T_SHAPES)
    with pytest.raises(ConfigError, match="3 maps and the teacher 2"):
        ATLoss(ATOptions())(_inputs(student, teacher[:2]))
    with pytest.raises(ConfigError, match="out of range"):
        SPLoss(SPOptions(layers=[3]))(_inputs(student, teacher))


def test_options_defaults_and_validation():
    assert (ATOptions().weight, ATOptions().p, ATOptions().layers) == (1000.0, 2.0, None)
    assert (SPOptions().weight, SPOptions().layers) == (3000.0, None)
    assert (FitNetOptions().weight, FitNetOptions().layer) == (100.0, 1)
    assert PKTOptions().weight == 30000.0
    r = RKDOptions()
    assert (r.weight, r.distance_weight, r.angle_weight) == (1.0, 25.0, 50.0)
    d = DKDOptions()
    assert (d.weight, d.alpha, d.beta, d.temperature) == (1.0, 1.0, 8.0, 4.0)
    for name in ("at", "sp", "fitnet", "pkt", "rkd", "dkd"):
        assert LOSSES.get(name).needs_teacher

    bad = [
        ("at", {"weight": -1}), ("at", {"p": 0}), ("at", {"layers": "all"}), ("at", {"beta": 1}),
        ("sp", {"layers": []}), ("sp", {"layers": [1.5]}), ("fitnet", {"layer": "middle"}),
        ("fitnet", {"bn": True}), ("pkt", {"weight": -3}), ("rkd", {"angle_weight": -1}),
        ("dkd", {"temperature": 0}), ("dkd", {"beta": -8}), ("dkd", {"alpha": "one"}),
    ]
    for name, data in bad:
        with pytest.raises(ConfigError, match=f"loss.{name}"):
            build(LOSSES.get(name).Options, data, where=f"loss.{name}")
    built = build(ATOptions, {"layers": [0, 2], "p": 4}, where="loss.at")
    assert built.layers == [0, 2] and built.p == 4.0
    # What the schema cannot see is checked when the method is built.
    with pytest.raises(ConfigError, match="more than once"):
        SPLoss(build(SPOptions, {"layers": [-1, -1]}, where="loss.sp"))
    with pytest.raises(ConfigError, match="empty"):
        ATLoss(ATOptions(layers=[]))
    with pytest.raises(ConfigError, match="both 0"):
        RKDLoss(build(RKDOptions, {"distance_weight": 0, "angle_weight": 0}, where="loss.rkd"))


# --------------------------------------------------------------------------- objective mix


def test_objective_mixes_ce_kd_amd_sp():
    raw = {"ce": 0.1, "kd": 0.9, "amd": 5000, "sp": 3000}
    options = {n: build(LOSSES.get(n).Options, {"weight": w}, where=f"loss.{n}")
               for n, w in raw.items()}
    objective = Objective(options)
    student = _feats(23, S_SHAPES, requires_grad=True)
    teacher = _feats(24, T_SHAPES)
    g = torch.Generator().manual_seed(25)
    ls = torch.randn(4, 10, generator=g, requires_grad=True)
    lt = torch.randn(4, 10, generator=g)
    y = torch.tensor([1, 2, 3, 4])
    total, terms = objective(_inputs(student, teacher, ls, lt, y))
    assert set(terms) == {"CE", "KD", "A", "P", "N", "SP"}
    assert torch.isfinite(total) and total.dtype == torch.float32
    want = (0.1 * terms["CE"] + 0.9 * terms["KD"]
            + 5000 * (terms["A"] + terms["P"] + terms["N"]) / 3 + 3000 * terms["SP"])
    assert total.item() == pytest.approx(want.item(), rel=1e-6)
    total.backward()
    assert ls.grad.abs().sum() > 0 and student[-1].grad.abs().sum() > 0


def test_objective_with_every_baseline_at_once():
    names = ("ce", "at", "sp", "fitnet", "pkt", "rkd", "dkd")
    options = {n: LOSSES.get(n).Options() for n in names}
    objective = Objective(options)
    student = _feats(26, S_SHAPES, requires_grad=True)
    teacher = _feats(27, T_SHAPES)
    for method in objective.methods.values():
        method.setup(student, teacher)
    ls, lt = torch.randn(4, 10, requires_grad=True), torch.randn(4, 10)
    total, terms = objective(_inputs(student, teacher, ls, lt, torch.tensor([0, 1, 2, 3])))
    assert set(terms) == {"CE", "AT", "SP", "FitNet", "PKT", "RKD_D", "RKD_A", "TCKD", "NCKD"}
    assert torch.isfinite(total)
    total.backward()
    assert all(torch.isfinite(f.grad).all() for f in student)
