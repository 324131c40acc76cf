"""Tests of the methods transcribed from their authors' code: LSKD, AFD, AFDS.

Run: python -m pytest tests/test_new_methods.py -q

Each reference below is the official code, transcribed (renamed where needed, otherwise
as published) with the repository and commit it comes from; kdtui's modules are compared
with it on the same inputs and, where the method learns parameters, the same weights.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from kdtui.errors import ConfigError
from kdtui.losses import LOSSES
from kdtui.losses.base import LossInputs
from kdtui.losses.lskd import LSKDLoss, LSKDOptions, lskd_divergence, standardise


def _inputs(student_feats=(), teacher_feats=None, student_logits=None, teacher_logits=None,
            labels=None) -> LossInputs:
    if student_logits is None:
        student_logits = torch.tensor([[2.0, 0.5, -1.0], [0.0, 1.0, 0.0]])
    return LossInputs(
        student_logits=student_logits,
        student_features=list(student_feats),
        labels=labels if labels is not None else torch.zeros(len(student_logits), dtype=torch.long),
        teacher_logits=teacher_logits,
        teacher_features=list(teacher_feats) if teacher_feats is not None else None,
    )


# =========================================================================== LSKD
# sunshangquan/logit-standardization-KD, mdistiller/distillers/KD.py,
# commit f6e5aa5172bad618e801163c3385322eea673754 (defaults from tools/train.py:
# --base-temp 2, --kd-weight 9; mdistiller/engine/cfg.py: KD.LOSS.CE_WEIGHT 0.1).


def official_normalize(logit):
    mean = logit.mean(dim=-1, keepdims=True)
    stdv = logit.std(dim=-1, keepdims=True)
    return (logit - mean) / (1e-7 + stdv)


def official_kd_loss(logits_student_in, logits_teacher_in, temperature, logit_stand):
    logits_student = official_normalize(logits_student_in) if logit_stand else logits_student_in
    logits_teacher = official_normalize(logits_teacher_in) if logit_stand else logits_teacher_in
    log_pred_student = F.log_softmax(logits_student / temperature, dim=1)
    pred_teacher = F.softmax(logits_teacher / temperature, dim=1)
    loss_kd = F.kl_div(log_pred_student, pred_teacher, reduction="none").sum(1).mean()
    loss_kd *= temperature**2
    return loss_kd


def test_lskd_hand_example():
    # Student (0, 1, 2): mean 1, unbiased std 1 → Z = (−1, 0, 1). Teacher (0, 0, 3): mean 1,
    # unbiased std √3 → Z = (−1, −1, 2)/√3. τ = 2: KL(softmax(Z_t/2) ‖ softmax(Z_s/2)) · 4.
    s, t = torch.tensor([[0.0, 1.0, 2.0]]), torch.tensor([[0.0, 0.0, 3.0]])
    zs, zt = [-1.0, 0.0, 1.0], [-1 / math.sqrt(3), -1 / math.sqrt(3), 2 / math.sqrt(3)]

    def log_softmax(z):
        m = max(z)
        lse = m + math.log(sum(math.exp(v - m) for v in z))
        return [v - lse for v in z]

    ls, lt = log_softmax([v / 2 for v in zs]), log_softmax([v / 2 for v in zt])
    want = 4 * sum(math.exp(b) * (b - a) for a, b in zip(ls, lt))
    assert want == pytest.approx(0.0672792, abs=1e-6)
    assert lskd_divergence(s, t, 2.0).item() == pytest.approx(want, rel=1e-5)
    assert standardise(t).tolist()[0] == pytest.approx(zt, rel=1e-6)


@pytest.mark.parametrize("tau", [1.0, 2.0, 4.0])
def test_lskd_matches_the_official_code(tau):
    g = torch.Generator().manual_seed(0)
    s = torch.randn(8, 10, generator=g, dtype=torch.float64) * 3
    t = torch.randn(8, 10, generator=g, dtype=torch.float64) * 5 + 1
    want = official_kd_loss(s, t, tau, logit_stand=True).item()
    assert lskd_divergence(s.float(), t.float(), tau).item() == pytest.approx(want, rel=1e-5)
    method = LSKDLoss(LSKDOptions(temperature=tau))
    assert method(_inputs(student_logits=s.float(), teacher_logits=t.float()))["LSKD"].item() == \
        pytest.approx(want, rel=1e-5)
    # Without standardisation the official function is plain KD: a different value.
    assert official_kd_loss(s, t, tau, logit_stand=False).item() != pytest.approx(want, rel=1e-3)


def test_lskd_ignores_the_logits_scale_and_shift():
    g = torch.Generator().manual_seed(1)
    s, t = torch.randn(4, 7, generator=g), torch.randn(4, 7, generator=g)
    base = lskd_divergence(s, t, 2.0).item()
    assert lskd_divergence(3 * s + 2, 0.5 * t - 1, 2.0).item() == pytest.approx(base, rel=1e-4)
    assert lskd_divergence(s, 5 * s, 2.0).item() == pytest.approx(0.0, abs=1e-6)


def test_lskd_gradient_student_only_float32_under_autocast():
    s = torch.randn(4, 5, requires_grad=True)
    t = torch.randn(4, 5, requires_grad=True)
    lskd_divergence(s, t, 2.0).backward()
    assert torch.isfinite(s.grad).all() and s.grad.abs().sum() > 0 and t.grad is None
    sb, tb = s.detach().bfloat16(), t.detach().bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = lskd_divergence(sb, tb, 2.0)
    assert got.dtype == torch.float32 and got.item() == lskd_divergence(sb.float(), tb.float(), 2.0).item()


def test_lskd_options_registration_and_teacher():
    opts = LSKDOptions()
    assert (opts.weight, opts.temperature) == (9.0, 2.0)
    assert LOSSES.get("lskd") is LSKDLoss and LSKDLoss.needs_teacher
    with pytest.raises(ConfigError, match="teacher"):
        LSKDLoss(opts)(_inputs())


# =========================================================================== AFD
# clovaai/attention-feature-distillation, commit dd990d0bb3788b60a0b0f5d44956f54e06e314ac:
# distill/AFD.py (the loss), utils.py (unique_shape, LAYER), models/wrn.py (the features).

from kdtui.losses.afd import AFDLoss, AFDOptions  # noqa: E402
from kdtui.models import build_model  # noqa: E402


class official_nn_bn_relu(torch.nn.Module):
    def __init__(self, nin, nout):
        super().__init__()
        self.linear = torch.nn.Linear(nin, nout)
        self.bn = torch.nn.BatchNorm1d(nout)
        self.relu = torch.nn.ReLU(False)

    def forward(self, x, relu=True):
        if relu:
            return self.relu(self.bn(self.linear(x)))
        return self.bn(self.linear(x))


def official_unique_shape(s_shapes):
    n_s = []
    unique_shapes = []
    n = -1
    for s_shape in s_shapes:
        if s_shape not in unique_shapes:
            unique_shapes.append(s_shape)
            n += 1
        n_s.append(n)
    return n_s, unique_shapes


class OfficialAttention(torch.nn.Module):
    def __init__(self, args):
        super().__init__()
        self.qk_dim = args.qk_dim
        self.n_t = args.n_t
        self.linear_trans_s = OfficialLinearTransformStudent(args)
        self.linear_trans_t = OfficialLinearTransformTeacher(args)
        self.p_t = torch.nn.Parameter(torch.Tensor(len(args.t_shapes), args.qk_dim))
        self.p_s = torch.nn.Parameter(torch.Tensor(len(args.s_shapes), args.qk_dim))
        torch.nn.init.xavier_normal_(self.p_t)
        torch.nn.init.xavier_normal_(self.p_s)

    def forward(self, g_s, g_t):
        bilinear_key, h_hat_s_all = self.linear_trans_s(g_s)
        query, h_t_all = self.linear_trans_t(g_t)
        p_logit = torch.matmul(self.p_t, self.p_s.t())
        logit = torch.add(torch.einsum('bstq,btq->bts', bilinear_key, query), p_logit) / np.sqrt(self.qk_dim)
        atts = F.softmax(logit, dim=2)  # b x t x s
        loss = []
        for i, (n, h_t) in enumerate(zip(self.n_t, h_t_all)):
            h_hat_s = h_hat_s_all[n]
            diff = self.cal_diff(h_hat_s, h_t, atts[:, i])
            loss.append(diff)
        return loss

    def cal_diff(self, v_s, v_t, att):
        diff = (v_s - v_t.unsqueeze(1)).pow(2).mean(2)
        diff = torch.mul(diff, att).sum(1).mean()
        return diff


class OfficialLinearTransformTeacher(torch.nn.Module):
    def __init__(self, args):
        super().__init__()
        self.query_layer = torch.nn.ModuleList([official_nn_bn_relu(t_shape[1], args.qk_dim) for t_shape in args.t_shapes])

    def forward(self, g_t):
        bs = g_t[0].size(0)
        channel_mean = [f_t.mean(3).mean(2) for f_t in g_t]
        spatial_mean = [f_t.pow(2).mean(1).view(bs, -1) for f_t in g_t]
        query = torch.stack([query_layer(f_t, relu=False) for f_t, query_layer in zip(channel_mean, self.query_layer)],
                            dim=1)
        value = [F.normalize(f_s, dim=1) for f_s in spatial_mean]
        return query, value


class OfficialLinearTransformStudent(torch.nn.Module):
    def __init__(self, args):
        super().__init__()
        self.t = len(args.t_shapes)
        self.s = len(args.s_shapes)
        self.qk_dim = args.qk_dim
        self.relu = torch.nn.ReLU(inplace=False)
        self.samplers = torch.nn.ModuleList([OfficialSample(t_shape) for t_shape in args.unique_t_shapes])
        self.key_layer = torch.nn.ModuleList([official_nn_bn_relu(s_shape[1], self.qk_dim) for s_shape in args.s_shapes])
        self.bilinear = official_nn_bn_relu(args.qk_dim, args.qk_dim * len(args.t_shapes))

    def forward(self, g_s):
        bs = g_s[0].size(0)
        channel_mean = [f_s.mean(3).mean(2) for f_s in g_s]
        spatial_mean = [sampler(g_s, bs) for sampler in self.samplers]
        key = torch.stack([key_layer(f_s) for key_layer, f_s in zip(self.key_layer, channel_mean)],
                          dim=1).view(bs * self.s, -1)  # Bs x h
        bilinear_key = self.bilinear(key, relu=False).view(bs, self.s, self.t, -1)
        value = [F.normalize(s_m, dim=2) for s_m in spatial_mean]
        return bilinear_key, value


class OfficialSample(torch.nn.Module):
    def __init__(self, t_shape):
        super().__init__()
        t_N, t_C, t_H, t_W = t_shape
        self.sample = torch.nn.AdaptiveAvgPool2d((t_H, t_W))

    def forward(self, g_s, bs):
        g_s = torch.stack([self.sample(f_s.pow(2).mean(1, keepdim=True)).view(bs, -1) for f_s in g_s], dim=1)
        return g_s


class _Args:
    def __init__(self, student, teacher, qk_dim):
        self.qk_dim = qk_dim
        self.s_shapes = [f.size() for f in student]
        self.t_shapes = [f.size() for f in teacher]
        self.n_t, self.unique_t_shapes = official_unique_shape(self.t_shapes)


def official_afd(meta_state: dict, student, teacher, qk_dim=128) -> float:
    """sum(Attention(g_s, g_t)) as the official AFD.forward, with kdtui's learned weights."""
    reference = OfficialAttention(_Args(student, teacher, qk_dim)).double()
    renamed = {}
    for k, v in meta_state.items():
        k = k.replace("key_layers.", "linear_trans_s.key_layer.").replace(
            "bilinear.", "linear_trans_s.bilinear.").replace("query_layers.", "linear_trans_t.query_layer.")
        renamed[k] = v.double() if v.is_floating_point() else v
    reference.load_state_dict(renamed)
    return sum(reference([f.double() for f in student], [f.double() for f in teacher])).item()


def _afd_inputs(student, teacher) -> LossInputs:
    return LossInputs(student_logits=torch.zeros(len(student[0]), 3), student_features=[],
                      labels=torch.zeros(len(student[0]), dtype=torch.long),
                      teacher_logits=torch.zeros(len(student[0]), 3), teacher_features=[],
                      student_block_features=list(student), teacher_block_features=list(teacher))


def _built_afd(student, teacher, **opts) -> AFDLoss:
    method = AFDLoss(AFDOptions(**opts))
    with torch.no_grad():  # as the engine's dry evaluation: builds the attention
        method(_afd_inputs(student, teacher))
    return method


# Candidate maps of two WRN-like nets: two per stage; the student has fewer channels, and
# one student map is larger than every teacher map (pooled) and one smaller (upsampled).
AFD_STUDENT = [(4, 4, 8, 8), (4, 4, 8, 8), (4, 8, 4, 4), (4, 8, 4, 4), (4, 16, 2, 2), (4, 16, 2, 2)]
AFD_TEACHER = [(4, 12, 8, 8), (4, 12, 8, 8), (4, 24, 4, 4), (4, 24, 4, 4), (4, 48, 2, 2)]


@pytest.mark.parametrize("seed", [0, 1])
def test_afd_matches_the_official_code(seed):
    g = torch.Generator().manual_seed(seed)
    student = [torch.randn(*s, generator=g).relu() for s in AFD_STUDENT]
    teacher = [torch.randn(*s, generator=g).relu() for s in AFD_TEACHER]
    torch.manual_seed(seed)
    method = _built_afd(student, teacher, qk_dim=16)
    # Non-trivial learned weights (as after some training), shared with the reference.
    with torch.no_grad():
        for p in method.meta.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g))
    got = method(_afd_inputs(student, teacher))["AFD"]
    want = official_afd(method.meta.state_dict(), student, teacher, qk_dim=16)
    assert got.dtype == torch.float32
    assert got.item() == pytest.approx(want, rel=1e-5)


def test_afd_learned_parts_match_the_official_shapes_and_train():
    student = [torch.randn(*s).relu().requires_grad_(True) for s in AFD_STUDENT]
    teacher = [torch.randn(*s).relu().requires_grad_(True) for s in AFD_TEACHER]
    method = _built_afd(student, teacher)
    reference = OfficialAttention(_Args(student, teacher, 128))
    mine = {k: tuple(v.shape) for k, v in method.meta.state_dict().items()}
    theirs = {k.replace("linear_trans_s.key_layer.", "key_layers.").replace("linear_trans_s.bilinear.", "bilinear.")
              .replace("linear_trans_t.query_layer.", "query_layers."): tuple(v.shape)
              for k, v in reference.state_dict().items()}
    assert mine == theirs
    method(_afd_inputs(student, teacher))["AFD"].backward()
    assert all(f.grad is not None and f.grad.abs().sum() > 0 for f in student[:-1])
    assert all(f.grad is None for f in teacher)
    for name, p in method.meta.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert {n for n, p in method.meta.named_parameters() if p.grad.abs().sum() > 0} >= {
        "p_t", "p_s", "bilinear.linear.weight", "query_layers.0.linear.weight", "key_layers.0.linear.weight"}


def test_afd_is_built_only_without_autograd_and_keeps_its_shapes():
    student = [torch.randn(*s) for s in AFD_STUDENT]
    teacher = [torch.randn(*s) for s in AFD_TEACHER]
    method = AFDLoss(AFDOptions())
    with pytest.raises(RuntimeError, match="dry loss evaluation"):
        method(_afd_inputs(student, teacher))
    with torch.no_grad():
        method(_afd_inputs(student, teacher))
    meta = method.meta
    method(_afd_inputs(student, teacher))
    assert method.meta is meta
    with pytest.raises(ValueError, match="built for"):
        method(_afd_inputs(student[:-1], teacher))


def test_afd_options_teacher_and_stage_features():
    opts = AFDOptions()
    assert (opts.weight, opts.qk_dim, opts.features) == (200.0, 128, "blocks")
    assert LOSSES.get("afd") is AFDLoss and AFDLoss.needs_teacher
    no_teacher = LossInputs(student_logits=torch.zeros(2, 3), student_features=[torch.randn(2, 4, 4, 4)],
                            labels=torch.zeros(2, dtype=torch.long))
    with pytest.raises(ConfigError, match="teacher"):
        AFDLoss(opts)(no_teacher)
    # features: stages — built by setup() from the stage maps, as FitNet's regressor.
    student = [torch.randn(4, 4, 8, 8), torch.randn(4, 8, 4, 4)]
    teacher = [torch.randn(4, 12, 8, 8), torch.randn(4, 24, 4, 4)]
    method = AFDLoss(AFDOptions(features="stages"))
    method.setup(student, teacher)
    inputs = LossInputs(student_logits=torch.zeros(4, 3), student_features=student,
                        labels=torch.zeros(4, dtype=torch.long), teacher_logits=torch.zeros(4, 3),
                        teacher_features=teacher)
    got = method(inputs)["AFD"].item()
    assert got == pytest.approx(official_afd(method.meta.state_dict(), student, teacher), rel=1e-5)
    with pytest.raises(ConfigError, match="block features"):
        AFDLoss(AFDOptions())(inputs)


# The official WRN (models/wrn.py of the AFD repository) with its is_feat features, to check
# kdtui's block_features against: LAYER['wrn16x2'] = arange(1, 7) of
# f1_act + f2_act + f3_act + [relu(f4), f5].
class OfficialBlock(torch.nn.Module):
    def __init__(self, in_planes, out_planes, stride):
        super().__init__()
        self.bn1 = torch.nn.BatchNorm2d(in_planes)
        self.relu1 = torch.nn.ReLU(inplace=False)
        self.conv1 = torch.nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = torch.nn.BatchNorm2d(out_planes)
        self.relu2 = torch.nn.ReLU(inplace=False)
        self.conv2 = torch.nn.Conv2d(out_planes, out_planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.equalInOut = (in_planes == out_planes)
        self.convShortcut = (not self.equalInOut) and torch.nn.Conv2d(
            in_planes, out_planes, kernel_size=1, stride=stride, padding=0, bias=False) or None

    def forward(self, x):
        if isinstance(x, tuple):
            x, features = x
            features.append(self.bn1(x))
        else:
            features = [self.bn1(x)]
        if not self.equalInOut:
            x = self.relu1(self.bn1(x))
        else:
            out = self.relu1(self.bn1(x))
        out = self.relu2(self.bn2(self.conv1(out if self.equalInOut else x)))
        out = self.conv2(out)
        out = torch.add(x if self.equalInOut else self.convShortcut(x), out)
        return out, features


def official_wrn_features(net_kdtui, x):
    """Rebuild the official WRN with kdtui's weights; return feat[1:3n+1] and the logits."""
    groups = net_kdtui.groups
    blocks = [[OfficialBlock(b.bn1.num_features, b.conv1.out_channels, b.conv1.stride[0]) for b in g] for g in groups]
    for g_ours, g_theirs in zip(groups, blocks):
        for ours, theirs in zip(g_ours, g_theirs):
            state = {k.replace("shortcut.", "convShortcut."): v for k, v in ours.state_dict().items()}
            theirs.load_state_dict(state)
            theirs.eval()
    relu = torch.nn.ReLU()
    out = net_kdtui.conv1(x)
    feats = []
    for g in blocks:
        group_feats = None
        for block in g:
            out, group_feats = block(out if group_feats is None else (out, group_feats))
        feats += [relu(f) for f in group_feats]
    f4 = net_kdtui.bn(out)
    feats.append(relu(f4))
    return feats[1:]


@pytest.mark.parametrize("name", ["wrn_16_1", "wrn_16_3", "wrn_28_1"])
def test_wrn_block_features_are_the_official_afd_features(name):
    torch.manual_seed(0)
    net = build_model(name, 10).eval()
    for m in net.modules():  # non-trivial BN statistics
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ours = net(x).block_features
        theirs = official_wrn_features(net, x)
    n = (int(name.split("_")[1]) - 4) // 6
    assert len(ours) == len(theirs) == 3 * n
    for a, b in zip(ours, theirs):
        assert a.shape == b.shape and torch.allclose(a, b, atol=1e-6)


def test_resnet_block_features_are_every_block_output():
    torch.manual_seed(0)
    net = build_model("resnet20", 10).eval()
    seen = []
    hooks = [b.register_forward_hook(lambda m, i, o: seen.append(o)) for s in net.stages for b in s]
    with torch.no_grad():
        out = net(torch.randn(2, 3, 32, 32))
    for h in hooks:
        h.remove()
    assert len(out.block_features) == 9 and all(torch.equal(a, b) for a, b in zip(out.block_features, seen))


def test_afd_from_model_outputs_wrn16_3_to_wrn16_1():
    torch.manual_seed(0)
    x = torch.randn(4, 3, 32, 32)
    teacher, student = build_model("wrn_16_3", 10).eval(), build_model("wrn_16_1", 10)
    with torch.no_grad():
        t_out = teacher(x)
        method = AFDLoss(AFDOptions())
        method(LossInputs.from_outputs(student(x), t_out, torch.zeros(4, dtype=torch.long)))
    s_out = student(x)
    terms = method(LossInputs.from_outputs(s_out, t_out, torch.zeros(4, dtype=torch.long)))
    assert set(terms) == {"AFD"} and torch.isfinite(terms["AFD"])
    want = official_afd(method.meta.state_dict(), s_out.block_features, t_out.block_features)
    assert terms["AFD"].item() == pytest.approx(want, rel=1e-5)
    terms["AFD"].backward()
    assert student.conv1.weight.grad.abs().sum() > 0


# =========================================================================== AFDS
# The authors published no code; the reference is the implementation distillation
# benchmarks use, AberHu/Knowledge-Distillation-Zoo kd_losses/afd.py and train_kd.py
# (@65470c846c1300d555815da26999cbe2b51fc815): ρ = sigmoid(SE block on the teacher's pooled
# map) normalised to sum 1; each channel's map divided by (its L2 norm + 1e-6); the term
# Σ_c ρ_c mean_hw (ŝ − t̂)², averaged over the batch and over the three pairs. Re-derived
# below channel by channel in float64 numpy with the method's weights.

from kdtui.losses.afds import AFDSLoss, AFDSOptions  # noqa: E402


def _np(t):
    return t.detach().double().numpy()


def _ref_adapter(adapter, fs):
    if isinstance(adapter, torch.nn.Identity):
        return fs
    conv, bn = adapter
    r = np.einsum("oc,bchw->bohw", _np(conv.weight)[:, :, 0, 0], fs)
    if bn.training:  # batch statistics, biased variance
        mean, var = r.mean(axis=(0, 2, 3), keepdims=True), r.var(axis=(0, 2, 3), keepdims=True)
    else:
        mean, var = _np(bn.running_mean)[None, :, None, None], _np(bn.running_var)[None, :, None, None]
    return (r - mean) / np.sqrt(var + bn.eps) * _np(bn.weight)[None, :, None, None] + _np(bn.bias)[None, :, None, None]


def ref_afds(method: AFDSLoss, student, teacher) -> float:
    total = 0.0
    for fs, ft, adapter, attention in zip(student, teacher, method.adapters, method.attentions):
        fs, ft = _np(fs), _np(ft)
        h, w = min(fs.shape[2], ft.shape[2]), min(fs.shape[3], ft.shape[3])

        def pool(f):
            b, c, H, W = f.shape
            return f.reshape(b, c, h, H // h, w, W // w).mean(axis=(3, 5))

        fs, ft = _ref_adapter(adapter, pool(fs)), pool(ft)
        w1, b1 = _np(attention.squeeze.weight)[:, :, 0, 0], _np(attention.squeeze.bias)
        w2, b2 = _np(attention.excite.weight)[:, :, 0, 0], _np(attention.excite.bias)
        pair = 0.0
        for b in range(ft.shape[0]):
            hidden = np.maximum(w1 @ ft[b].mean(axis=(1, 2)) + b1, 0)
            rho = 1 / (1 + np.exp(-(w2 @ hidden + b2)))
            rho /= rho.sum()
            for c in range(ft.shape[1]):
                s_hat = fs[b, c] / (np.sqrt((fs[b, c] ** 2).sum()) + 1e-6)
                t_hat = ft[b, c] / (np.sqrt((ft[b, c] ** 2).sum()) + 1e-6)
                pair += rho[c] * ((s_hat - t_hat) ** 2).mean()
        total += pair / ft.shape[0]
    return total / len(student)


AFDS_S = [(4, 3, 8, 8), (4, 5, 4, 4), (4, 12, 2, 2)]
AFDS_T = [(4, 6, 4, 4), (4, 8, 4, 4), (4, 12, 2, 2)]


def _afds_inputs(student, teacher) -> LossInputs:
    return LossInputs(student_logits=torch.zeros(len(student[0]), 3), student_features=list(student),
                      labels=torch.zeros(len(student[0]), dtype=torch.long),
                      teacher_logits=torch.zeros(len(student[0]), 3), teacher_features=list(teacher))


def test_afds_hand_example():
    # One pair of equal widths (no adapter), 2 channels, 1×2 maps; attention with zero
    # weights and output biases (0, ln 3): σ → (1/2, 3/4), normalised ρ = (0.4, 0.6).
    s = torch.tensor([[[[1.0, 2.0]], [[0.0, 1.0]]]])
    t = torch.tensor([[[[1.0, 0.0]], [[3.0, 1.0]]]])
    method = AFDSLoss(AFDSOptions())
    method.setup([s], [t])
    assert isinstance(method.adapters[0], torch.nn.Identity)
    with torch.no_grad():
        for p in method.attentions.parameters():
            p.zero_()
        method.attentions[0].excite.bias.copy_(torch.tensor([0.0, math.log(3.0)]))
    r5, r10 = math.sqrt(5), math.sqrt(10)
    d0 = ((1 / r5 - 1) ** 2 + (2 / r5) ** 2) / 2
    d1 = ((0 - 3 / r10) ** 2 + (1 - 1 / r10) ** 2) / 2
    want = 0.4 * d0 + 0.6 * d1
    assert method(_afds_inputs([s], [t]))["AFDS"].item() == pytest.approx(want, rel=1e-5)


@pytest.mark.parametrize("seed", [0, 1])
def test_afds_matches_the_reference_formula(seed):
    g = torch.Generator().manual_seed(seed)
    student = [torch.randn(*s, generator=g) for s in AFDS_S]
    teacher = [torch.randn(*s, generator=g) for s in AFDS_T]
    torch.manual_seed(seed)
    method = AFDSLoss(AFDSOptions(attention_factor=0.5))
    method.setup(student, teacher)
    assert [type(a).__name__ for a in method.adapters] == ["Sequential", "Sequential", "Identity"]
    assert method.attentions[1].squeeze.out_channels == 4
    with torch.no_grad():
        for p in method.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g))
    got = method(_afds_inputs(student, teacher))["AFDS"]
    assert got.dtype == torch.float32
    assert got.item() == pytest.approx(ref_afds(method, student, teacher), rel=1e-5)
    # layers: a subset of the pairs.
    method = AFDSLoss(AFDSOptions(layers=[1]))
    method.setup(student, teacher)
    got = method(_afds_inputs(student, teacher))["AFDS"].item()
    assert got == pytest.approx(ref_afds(method, student[1:2], teacher[1:2]), rel=1e-5)


def test_afds_trains_its_parts_and_the_student_only():
    student = [torch.randn(*s, requires_grad=True) for s in AFDS_S]
    teacher = [torch.randn(*s, requires_grad=True) for s in AFDS_T]
    method = AFDSLoss(AFDSOptions())
    with pytest.raises(RuntimeError, match="setup"):
        method(_afds_inputs(student, teacher))
    method.setup(student, teacher)
    method.setup(student, teacher)  # idempotent
    method(_afds_inputs(student, teacher))["AFDS"].backward()
    assert all(f.grad is not None and f.grad.abs().sum() > 0 for f in student)
    assert all(f.grad is None for f in teacher)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in method.parameters())
    with pytest.raises(ValueError, match="built for"):
        method.setup(student[:2] + [torch.randn(4, 7, 2, 2)], teacher)


def test_afds_options_teacher_and_autocast():
    opts = AFDSOptions()
    assert (opts.weight, opts.attention_factor, opts.layers) == (500.0, 1.0, None)
    assert LOSSES.get("afds") is AFDSLoss and AFDSLoss.needs_teacher
    with pytest.raises(ConfigError, match="teacher"):
        AFDSLoss(opts).setup([torch.randn(2, 3, 4, 4)], None)
    with pytest.raises(ConfigError, match="more than once"):
        AFDSLoss(AFDSOptions(layers=[0, 0]))
    student = [torch.randn(*s) for s in AFDS_S]
    teacher = [torch.randn(*s) for s in AFDS_T]
    method = AFDSLoss(opts)
    method.setup(student, teacher)
    method.eval()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = method(_afds_inputs([f.bfloat16() for f in student], [f.bfloat16() for f in teacher]))["AFDS"]
    want = method(_afds_inputs([f.bfloat16().float() for f in student], [f.bfloat16().float() for f in teacher]))
    assert got.dtype == torch.float32 and got.item() == want["AFDS"].item()
