"""Mixup / CutMix of training batches, and deterministic runs (train.deterministic)."""

from __future__ import annotations

import statistics

import pytest
import torch
import torch.nn.functional as F

from kdtui.engine.mixing import mix_batch


def constant_batch(n=8, size=16):
    """Image i is filled with the value i, and labelled i: a mixed pixel tells its sources."""
    images = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 3, size, size).contiguous()
    return images, torch.arange(n)


def test_no_alpha_no_mixing():
    images, labels = constant_batch()
    assert mix_batch(images, labels, mixup_alpha=0, cutmix_alpha=0, seed=0, step=1) is None


def test_mixup_is_a_convex_combination_with_the_partner_labels():
    images, labels = constant_batch()
    mixed, partner, lam = mix_batch(images, labels, mixup_alpha=0.4, cutmix_alpha=0, seed=3, step=5)
    assert 0 <= lam <= 1 and sorted(partner.tolist()) == labels.tolist()  # a permutation
    expected = lam * labels.float() + (1 - lam) * partner.float()
    assert torch.allclose(mixed[:, :, 0, 0], expected.view(-1, 1).expand(-1, 3))
    assert torch.equal(images, constant_batch()[0])  # the input is not modified


def test_cutmix_pastes_one_box_whose_area_is_one_minus_lambda():
    images, labels = constant_batch(size=32)
    for step in range(20):
        mixed, partner, lam = mix_batch(images, labels, mixup_alpha=0, cutmix_alpha=1.0, seed=0, step=step)
        for i in range(len(labels)):
            values = mixed[i, 0]
            own = (values == labels[i]).float().mean().item()
            if partner[i] != labels[i]:
                assert ((values == labels[i]) | (values == partner[i])).all()
                assert own == pytest.approx(lam)


def test_draws_depend_only_on_seed_and_step_and_follow_beta():
    images, labels = constant_batch()
    a = mix_batch(images, labels, mixup_alpha=0.2, cutmix_alpha=0, seed=1, step=9)
    b = mix_batch(images, labels, mixup_alpha=0.2, cutmix_alpha=0, seed=1, step=9)
    assert torch.equal(a[0], b[0]) and a[2] == b[2]
    lams = [mix_batch(images, labels, mixup_alpha=0.2, cutmix_alpha=0, seed=1, step=s)[2]
            for s in range(2000)]
    assert statistics.mean(lams) == pytest.approx(0.5, abs=0.03)          # Beta(α, α) is symmetric
    assert sum(l < 0.1 or l > 0.9 for l in lams) / len(lams) > 0.5        # α = 0.2: U-shaped
    both = [mix_batch(images, labels, mixup_alpha=0.2, cutmix_alpha=1.0, seed=1, step=s)[0]
            for s in range(200)]
    boxed = sum(bool((m % 1 == 0).all()) for m in both)
    assert 60 < boxed < 140  # about half the batches CutMix (integer pixels), half Mixup


def test_cross_entropy_is_taken_against_the_mixed_targets():
    from kdtui.losses.base import LossInputs
    from kdtui.losses.ce import CELoss, CEOptions

    logits = torch.randn(6, 5)
    a, b = torch.tensor([0, 1, 2, 3, 4, 0]), torch.tensor([4, 3, 2, 1, 0, 1])
    ce = CELoss(CEOptions())
    got = ce(LossInputs(student_logits=logits, student_features=[], labels=a, mixed_labels=b,
                        mix_weight=0.3))["CE"]
    assert got == pytest.approx((0.3 * F.cross_entropy(logits, a) + 0.7 * F.cross_entropy(logits, b)).item())


def test_the_teacher_sees_the_same_mixed_images_as_the_student(tiny_presets, tmp_path):
    from kdtui.config import load_config
    from kdtui.data import build_data
    from kdtui.engine.trainer import Trainer
    from kdtui.models import build_model
    from kdtui.store import create_run

    cfg = load_config(tiny_presets / "tiny_student.yaml", ["data.mixup_alpha=0.4", "data.cutmix_alpha=1.0"])
    trainer = Trainer(cfg, build_data(cfg.data), teacher=build_model("wrn_10_1", 10), teacher_id=None, sinks=[])
    seen = {"student": [], "teacher": []}
    trainer.student.register_forward_hook(lambda m, args, out: seen["student"].append(args[0].clone()))
    trainer.teacher._model.register_forward_hook(lambda m, args, out: seen["teacher"].append(args[0].clone()))
    trainer.run = create_run(tmp_path / "runs", "mix")
    assert trainer.train_epoch(1)
    train_calls = [s for s in seen["student"] if s.shape[0] == cfg.train.batch_size]
    assert train_calls and all(torch.equal(s, t) for s, t in zip(train_calls, seen["teacher"]))
    fractional = [s for s in train_calls if not torch.equal(s, s.round())]
    assert fractional  # mixed, not the raw batch


def test_deterministic_runs_repeat_exactly(tiny_presets):
    from kdtui.config import load_config
    from kdtui.engine.launch import start_run
    from kdtui.store import RunStoreWriter, runs_root

    overrides = ["train.deterministic=true", "train.epochs=2", "data.mixup_alpha=0.2"]
    runs = []
    for name in ("one", "two"):
        run, _ = start_run(load_config(tiny_presets / "tiny_teacher.yaml", overrides), runs_root(),
                           name=name, sinks_for=lambda r, role: [RunStoreWriter(r)], notify=lambda _: None)
        runs.append([(e.loss, e.train_acc, e.test_acc) for e in run.epochs()])
    assert runs[0] == runs[1] and len(runs[0]) == 2
    assert torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(False)
