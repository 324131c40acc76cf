"""CRD against a transcription of RepDistiller's code, its negatives, and the data path's
sample indices it depends on."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from kdtui.losses.base import LossInputs
from kdtui.losses.crd import CRDLoss, CRDOptions

EPS = 1e-7


# --- RepDistiller, crd/criterion.py and crd/memory.py (HobbitLong/RepDistiller @b84f547),
# transcribed for CPU with the contrast indices given (mode "exact"); the print and the
# AliasMethod sampler (unused when contrast_idx is given) are left out.

class RefNormalize(nn.Module):
    def forward(self, x):
        norm = x.pow(2).sum(1, keepdim=True).pow(1. / 2)
        return x.div(norm)


class RefEmbed(nn.Module):
    def __init__(self, dim_in, dim_out):
        super().__init__()
        self.linear = nn.Linear(dim_in, dim_out)
        self.l2norm = RefNormalize()

    def forward(self, x):
        x = x.view(x.shape[0], -1)
        return self.l2norm(self.linear(x))


class RefContrastLoss(nn.Module):
    def __init__(self, n_data):
        super().__init__()
        self.n_data = n_data

    def forward(self, x):
        bsz = x.shape[0]
        m = x.size(1) - 1
        Pn = 1 / float(self.n_data)
        P_pos = x.select(1, 0)
        log_D1 = torch.div(P_pos, P_pos.add(m * Pn + EPS)).log_()
        P_neg = x.narrow(1, 1, m)
        log_D0 = torch.div(P_neg.clone().fill_(m * Pn), P_neg.add(m * Pn + EPS)).log_()
        return - (log_D1.sum(0) + log_D0.view(-1, 1).sum(0)) / bsz


class RefContrastMemory(nn.Module):
    def __init__(self, memory_v1, memory_v2, K, T, momentum):
        super().__init__()
        self.K = K
        self.register_buffer('params', torch.tensor([K, T, -1, -1, momentum]))
        self.register_buffer('memory_v1', memory_v1.clone())
        self.register_buffer('memory_v2', memory_v2.clone())

    def forward(self, v1, v2, y, idx):
        K = int(self.params[0].item())
        T = self.params[1].item()
        Z_v1 = self.params[2].item()
        Z_v2 = self.params[3].item()
        momentum = self.params[4].item()
        batchSize = v1.size(0)
        outputSize = self.memory_v1.size(0)
        inputSize = self.memory_v1.size(1)
        weight_v1 = torch.index_select(self.memory_v1, 0, idx.view(-1)).detach()
        weight_v1 = weight_v1.view(batchSize, K + 1, inputSize)
        out_v2 = torch.bmm(weight_v1, v2.view(batchSize, inputSize, 1))
        out_v2 = torch.exp(torch.div(out_v2, T))
        weight_v2 = torch.index_select(self.memory_v2, 0, idx.view(-1)).detach()
        weight_v2 = weight_v2.view(batchSize, K + 1, inputSize)
        out_v1 = torch.bmm(weight_v2, v1.view(batchSize, inputSize, 1))
        out_v1 = torch.exp(torch.div(out_v1, T))
        if Z_v1 < 0:
            self.params[2] = out_v1.mean() * outputSize
            Z_v1 = self.params[2].clone().detach().item()
        if Z_v2 < 0:
            self.params[3] = out_v2.mean() * outputSize
            Z_v2 = self.params[3].clone().detach().item()
        out_v1 = torch.div(out_v1, Z_v1).contiguous()
        out_v2 = torch.div(out_v2, Z_v2).contiguous()
        with torch.no_grad():
            l_pos = torch.index_select(self.memory_v1, 0, y.view(-1))
            l_pos.mul_(momentum)
            l_pos.add_(torch.mul(v1, 1 - momentum))
            l_norm = l_pos.pow(2).sum(1, keepdim=True).pow(0.5)
            self.memory_v1.index_copy_(0, y, l_pos.div(l_norm))
            ab_pos = torch.index_select(self.memory_v2, 0, y.view(-1))
            ab_pos.mul_(momentum)
            ab_pos.add_(torch.mul(v2, 1 - momentum))
            ab_norm = ab_pos.pow(2).sum(1, keepdim=True).pow(0.5)
            self.memory_v2.index_copy_(0, y, ab_pos.div(ab_norm))
        return out_v1, out_v2


def make_crd(n_data=20, s_dim=6, t_dim=7, feat_dim=8, k=5, classes=4):
    torch.manual_seed(0)
    method = CRDLoss(CRDOptions(feat_dim=feat_dim, nce_k=k))
    labels = torch.arange(n_data) % classes
    dry = LossInputs(student_logits=torch.zeros(2, classes), student_features=[], labels=torch.zeros(2),
                     student_embedding=torch.zeros(2, s_dim), teacher_embedding=torch.zeros(2, t_dim))
    method.setup_data(dry, labels)
    return method, labels


@pytest.mark.parametrize("k", [5, 1], ids=["scored-against-the-whole-memory", "gathered-slots"])
def test_crd_matches_repdistiller_over_two_batches(k):
    """With 20 images, 1+5 slots score against the whole memory, 1+1 slots gather theirs
    (crd.slot_dots picks by size); both must be RepDistiller's numbers."""
    method, labels = make_crd(k=k)
    ref_embed_s, ref_embed_t = RefEmbed(6, 8), RefEmbed(7, 8)
    ref_embed_s.load_state_dict(method.embed_s.state_dict())
    ref_embed_t.load_state_dict(method.embed_t.state_dict())
    memory = RefContrastMemory(method.memory_s, method.memory_t, K=k, T=0.07, momentum=0.5)
    ref_loss = RefContrastLoss(20)
    for batch in range(2):
        f_s, f_t = torch.randn(4, 6), torch.randn(4, 7)
        idx = torch.tensor([0, 5, 10, 15]) + batch
        slots = torch.cat([idx[:, None], method.sample_negatives(idx)], dim=1)
        out_v1, out_v2 = memory(ref_embed_s(f_s), ref_embed_t(f_t), idx, slots)
        expected = ref_loss(out_v1) + ref_loss(out_v2)
        got = method.contrast(method.embed_s(f_s), method.embed_t(f_t), idx, slots)
        assert got.item() == pytest.approx(expected.item(), rel=1e-5)
        assert torch.allclose(method.memory_s, memory.memory_v1, atol=1e-6)
        assert torch.allclose(method.memory_t, memory.memory_v2, atol=1e-6)
    assert method.z.tolist() == pytest.approx([memory.params[2].item(), memory.params[3].item()], rel=1e-6)


def test_negatives_are_uniform_over_the_other_classes():
    method, labels = make_crd(n_data=40, k=4000, classes=4)
    idx = torch.tensor([0, 1, 2, 3])
    negatives = method.sample_negatives(idx)
    assert negatives.shape == (4, 4000)
    for row, i in zip(negatives, idx):
        assert (labels[row] != labels[i]).all()
        counts = torch.bincount(row, minlength=40).float()
        others = counts[labels != labels[i]]
        assert others.min() > 0 and others.max() / others.mean() < 1.5   # 30 slots, ~133 draws each


def test_dry_run_leaves_the_memory_alone_and_training_needs_indices():
    method, _ = make_crd()
    before = method.memory_s.clone()
    inputs = LossInputs(student_logits=torch.zeros(2, 4), student_features=[], labels=torch.zeros(2),
                        student_embedding=torch.randn(2, 6), teacher_embedding=torch.randn(2, 7))
    assert method(inputs)["CRD"].item() == 0.0 and torch.equal(method.memory_s, before)
    inputs.indices = torch.tensor([3, 4])
    value = method(inputs)["CRD"]
    assert math.isfinite(value.item()) and value.item() > 0 and not torch.equal(method.memory_s, before)
    assert CRDLoss.needs_indices


def test_folder_batches_carry_training_positions(tmp_path):
    from PIL import Image

    from kdtui.config import DataConfig
    from kdtui.data import build_data

    for split in ("train", "test"):
        for c, name in enumerate(("a", "b", "c")):
            folder = tmp_path / split / name
            folder.mkdir(parents=True)
            for i in range(4):
                Image.new("RGB", (8, 8), (c * 80, i * 40, 90)).save(folder / f"{i}.png")
    bundle = build_data(DataConfig(dataset="imagefolder", root=str(tmp_path), num_workers=0), seed=0)
    seen = []
    for images, labels, indices in bundle.train_batches(4, 1, torch.device("cpu"), with_indices=True):
        assert torch.equal(bundle.train_labels[indices], labels)
        seen.extend(indices.tolist())
    assert sorted(seen) == list(range(12))
    assert len(next(iter(bundle.train_batches(4, 1, torch.device("cpu"))))) == 2  # unchanged by default


def test_a_crd_run_trains_and_resumes(tiny_presets, monkeypatch):
    """...and the resumed run scores against the memories and Z of its checkpoint, not the
    fresh ones setup_data draws when the trainer is built."""
    from kdtui.config import load_config
    from kdtui.engine.checkpoint import load_checkpoint
    from kdtui.engine.launch import resume_run, start_run
    from kdtui.store import RunStoreWriter, runs_root
    import threading

    class StopAfterFirstEpoch:
        def __init__(self, stop):
            self.stop = stop

        def __call__(self, event):
            if getattr(event, "kind", "") == "epoch":
                self.stop.set()

    overrides = ["loss.kd.weight=0", "loss.amd.weight=0", "loss.crd.weight=0.8", "loss.crd.nce_k=64"]
    stop = threading.Event()
    run, _ = start_run(load_config(tiny_presets / "tiny_student.yaml", overrides), runs_root(),
                       stop_event=stop, notify=lambda _: None,
                       sinks_for=lambda r, role: [RunStoreWriter(r)] + ([StopAfterFirstEpoch(stop)]
                                                                        if role == "student" else []))
    assert run.summary().status == "stopped" and [e.epoch for e in run.epochs()] == [1]
    saved = load_checkpoint(run.checkpoints / "last.pt")["objective"]
    first: dict[str, torch.Tensor] = {}
    contrast = CRDLoss.contrast

    def recording(self, v_s, v_t, indices, slots):
        for name in ("memory_s", "memory_t", "z"):
            first.setdefault(name, getattr(self, name).clone())
        return contrast(self, v_s, v_t, indices, slots)

    monkeypatch.setattr(CRDLoss, "contrast", recording)
    resume_run(run.id, runs_root(), notify=lambda _: None, sinks_for=lambda r, role: [RunStoreWriter(r)])
    epochs = run.epochs()
    assert [e.epoch for e in epochs] == [1, 2, 3] and run.summary().status == "finished"
    assert all(math.isfinite(e.loss["CRD"]) and e.loss["CRD"] > 0 for e in epochs)
    for name in ("memory_s", "memory_t", "z"):
        (key,) = [k for k in saved if k.endswith(f"crd.{name}")]
        assert torch.equal(first[name], saved[key]), name
    assert (first["z"] > 0).all()
