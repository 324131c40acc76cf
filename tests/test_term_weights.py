"""Each loss term's factor in the total (recorded so the dashboard's weighted view adds up):
the objective's coefficients, and what a run records of them."""

from __future__ import annotations

import pytest
import torch

from kdtui.config import load_config
from kdtui.engine.launch import start_run
from kdtui.engine.objective import Objective
from kdtui.losses.base import LossInputs
from kdtui.store import RunStoreWriter, runs_root


def inputs(epoch: int = 1) -> LossInputs:
    g = torch.Generator().manual_seed(0)
    s_feats = [torch.randn(4, 3, 8, 8, generator=g), torch.randn(4, 5, 4, 4, generator=g)]
    t_feats = [torch.randn(4, 6, 8, 8, generator=g), torch.randn(4, 7, 4, 4, generator=g)]
    return LossInputs(student_logits=torch.randn(4, 5, generator=g), student_features=s_feats,
                      labels=torch.arange(4) % 5, teacher_logits=torch.randn(4, 5, generator=g),
                      teacher_features=t_feats, epoch=epoch)


@pytest.mark.parametrize("epoch", [1, 3, 30])
def test_the_total_is_the_sum_of_each_term_times_its_coefficient(epoch):
    cfg = load_config(data={"data": {"dataset": "shapes"}, "student": {"arch": "wrn_10_1"},
                            "teacher": {"arch": "wrn_10_1", "checkpoint": "x.pt"},
                            "loss": {"ce": {"weight": 0.1}, "kd": {"weight": 0.9},
                                     "amd": {"weight": 5000}, "dkd": {"weight": 2, "warmup_epochs": 5}}})
    objective = Objective(cfg.active_losses)
    assert objective.coefficients(epoch) == {}                 # no term seen yet
    total, terms = objective(inputs(epoch))
    weights = objective.coefficients(epoch)
    assert set(weights) == set(terms)
    assert weights["CE"] == pytest.approx(0.1) and weights["KD"] == pytest.approx(0.9)
    assert weights["A"] == weights["P"] == weights["N"] == pytest.approx(5000 / 3)  # γ·mean(A, P, N)
    assert weights["TCKD"] == pytest.approx(2 * min(epoch / 5, 1.0) * 1.0)          # α = 1 (default)
    assert sum(weights[k] * v.item() for k, v in terms.items()) == pytest.approx(total.item(), rel=1e-5)


def test_a_run_records_the_coefficients_at_start_and_for_each_epoch(tiny_presets):
    cfg = load_config(tiny_presets / "tiny_teacher.yaml", ["train.epochs=1", "loss.ce.weight=0.5"])
    run, _ = start_run(cfg, runs_root(), sinks_for=lambda r, role: [RunStoreWriter(r)], notify=lambda _: None)
    assert run.summary().term_weights == {"CE": 0.5}
    (epoch,) = run.epochs()
    assert epoch.term_weights == {"CE": 0.5}
    assert epoch.loss["total"] == pytest.approx(0.5 * epoch.loss["CE"], rel=1e-5)
