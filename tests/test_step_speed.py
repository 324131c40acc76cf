"""The training step's speed settings: no host syncs inside the step (metrics are read once per
log interval), and train.compile."""

from __future__ import annotations

import math

import pytest
import torch

from kdtui import events as ev


def _trainer(tiny_presets, overrides: list[str], tmp_path, name: str):
    from kdtui.config import load_config
    from kdtui.data import build_data
    from kdtui.engine.trainer import Trainer
    from kdtui.models import build_model
    from kdtui.store import create_run

    cfg = load_config(tiny_presets / "tiny_student.yaml", overrides)
    recorded: list[ev.Event] = []
    torch.manual_seed(1)
    teacher = build_model("wrn_10_1", 10)
    trainer = Trainer(cfg, build_data(cfg.data), teacher=teacher, teacher_id=None,
                      sinks=[recorded.append])
    trainer.run = create_run(tmp_path / "runs", name)
    return trainer, recorded


SYNCING = ("item", "tolist", "__bool__", "__float__", "__int__", "__index__", "cpu", "numpy")


def _count_host_reads(monkeypatch) -> dict[str, int]:
    """Count every Tensor method that copies a value to the host (a device sync on a GPU)."""
    counts = dict.fromkeys(SYNCING, 0)
    for name in SYNCING:
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _name=name, _original=original, **kwargs):
            counts[_name] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    return counts


@pytest.mark.parametrize("losses", [["amd", "kd", "ce"], ["ce"]])
def test_the_step_reads_nothing_from_the_device_between_log_intervals(tiny_presets, tmp_path,
                                                                      monkeypatch, losses):
    """An epoch of 12 steps reads the device as often as one of 6 (log_every beyond both):
    whatever the step records is accumulated on the device and fetched at log intervals and
    at the epoch's end, never once per step."""
    drop = [f"loss.{name}.weight=0" for name in ("amd", "kd") if name not in losses]
    per_epoch = {}
    for size in (192, 384):
        trainer, _ = _trainer(tiny_presets, [f"data.train_size={size}", "train.log_every=1000",
                                             *drop], tmp_path, f"sync{size}")
        counts = _count_host_reads(monkeypatch)
        assert trainer.train_epoch(1)
        monkeypatch.undo()
        per_epoch[size] = sum(counts.values())
    assert trainer.steps_per_epoch == 12
    assert per_epoch[192] > 0   # the counting works: the epoch's end reads its means
    assert per_epoch[384] == per_epoch[192]


def test_step_metrics_are_the_means_of_each_log_window(tiny_presets, tmp_path, monkeypatch):
    """What StepMetrics records is the mean of the window's per-step values, fetched in one read."""
    from kdtui.engine import objective as objective_module

    seen: list[dict[str, float]] = []
    original = objective_module.Objective.forward

    def recording(self, inputs):
        total, terms = original(self, inputs)
        seen.append({**{k: float(v.detach()) for k, v in terms.items()}, "total": float(total.detach())})
        return total, terms

    monkeypatch.setattr(objective_module.Objective, "forward", recording)
    trainer, recorded = _trainer(tiny_presets, ["train.log_every=2"], tmp_path, "means")
    seen.clear()   # the dry run at set-up
    assert trainer.train_epoch(1)
    steps = [e for e in recorded if isinstance(e, ev.StepMetrics)]
    assert [e.step for e in steps] == [2, 4, 6]
    for event in steps:
        window = seen[event.step - 2:event.step]
        for name, value in event.loss.items():
            assert value == pytest.approx(sum(w[name] for w in window) / 2, rel=1e-6), name


def _compile_works() -> bool:
    try:
        return bool(torch.compile(lambda x: x * 2 + 1)(torch.ones(2)).eq(3).all())
    except Exception:  # noqa: BLE001 - no C++ compiler, or no compile support on this platform
        return False


def test_train_compile_compiles_the_networks_and_losses_and_trains(tiny_presets, tmp_path):
    if not _compile_works():
        pytest.skip("torch.compile is not usable here (no C++ compiler?)")
    eager, eager_events = _trainer(tiny_presets, ["train.epochs=1"], tmp_path, "eager")
    compiled, events = _trainer(tiny_presets, ["train.epochs=1", "train.compile=true"], tmp_path,
                                "compiled")
    assert eager.student._compiled_call_impl is None
    assert compiled.student._compiled_call_impl is not None
    assert compiled.teacher._model._compiled_call_impl is not None
    assert all(m._compiled_call_impl is not None for m in compiled.objective.methods.values())
    assert eager.train_epoch(1) and compiled.train_epoch(1)
    # Saved weights keep the plain module's names, so checkpoints work either way.
    assert compiled.state()["model"].keys() == eager.state()["model"].keys()
    ends = [[e for e in evs if isinstance(e, ev.EpochEnd)][0] for evs in (eager_events, events)]
    for name, value in ends[0].loss.items():
        assert math.isfinite(ends[1].loss[name])
        assert ends[1].loss[name] == pytest.approx(value, rel=0.05), name
