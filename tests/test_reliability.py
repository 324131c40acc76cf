"""Fault injection: signals, kill -9, NaNs, a full disk, concurrent and broken run folders."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from kdtui.config import load_config
from kdtui import events as ev
from kdtui.engine.launch import resume_run, start_run
from kdtui.errors import KdtuiError
from kdtui.losses.ce import CELoss
from kdtui.store import RunStoreWriter, create_run, iter_runs, read_jsonl, runs_root

from test_run import StopAfterEpoch, kdtui


def start_cli(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "kdtui", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def wait_for(predicate, timeout: float = 120.0) -> None:
    deadline = time.time() + timeout
    while not predicate():
        if time.time() > deadline:
            raise TimeoutError("condition not reached")
        time.sleep(0.05)


def only_run() -> "RunDir":  # noqa: F821
    (run,) = list(iter_runs(runs_root()))
    return run


def has_record(kind: str, epoch: int = 1):
    def check() -> bool:
        runs = list(iter_runs(runs_root()))
        return bool(runs) and any(r.get("event") == kind and r.get("epoch", 0) >= epoch
                                  for r in runs[0].read_metrics())
    return check


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_stops_cleanly_and_resume_finishes(tiny_presets, sig, code):
    proc = start_cli("run", "tiny_teacher", "--headless", "--set", "train.epochs=6")
    wait_for(has_record("epoch", 1))
    proc.send_signal(sig)
    output = proc.communicate(timeout=120)[0]
    assert proc.returncode == code, output
    run = only_run()
    summary = run.read_summary()
    assert summary["status"] == "stopped" and summary["epochs_done"] >= 1
    assert (run.checkpoints / "last.pt").exists()

    result = kdtui("run", "--resume", run.id)
    assert result.exit_code == 0, result.output
    assert [r.epoch for r in run.epochs()] == list(range(1, 7))
    assert run.read_summary()["status"] == "finished"


def test_kill_9_mid_run_then_resume_matches_uninterrupted_run(tiny_presets):
    straight, _ = start_run(load_config(tiny_presets / "tiny_teacher.yaml", ["train.epochs=4"]),
                            runs_root(), name="straight", notify=lambda _: None,
                            sinks_for=lambda r, role: [RunStoreWriter(r)])
    proc = start_cli("run", "tiny_teacher", "--headless", "--name", "killed", "--set", "train.epochs=4")
    killed = lambda: next(r for r in iter_runs(runs_root()) if r.id.endswith("-killed"))  # noqa: E731
    wait_for(lambda: any(r.id.endswith("-killed") for r in iter_runs(runs_root()))
             and any(rec.get("event") == "step" and rec["epoch"] == 2 for rec in killed().read_metrics()))
    proc.kill()
    proc.wait(timeout=30)
    run = killed()
    assert run.read_summary()["status"] == "running"  # what a kill -9 leaves behind

    result = kdtui("run", "--resume", run.id)
    assert result.exit_code == 0, result.output
    resumed, reference = run.epochs(), straight.epochs()
    assert [r.epoch for r in resumed] == [1, 2, 3, 4]
    for a, b in zip(resumed, reference):
        assert a.test_acc == pytest.approx(b.test_acc, abs=1e-6)
        assert a.loss["total"] == pytest.approx(b.loss["total"], rel=1e-4)
    assert run.read_summary()["final_test_acc"] == pytest.approx(straight.read_summary()["final_test_acc"])


def nan_after(monkeypatch, calls: int, times: int = 10**9) -> None:
    """Make the CE term NaN from its ``calls``-th training-step call on, ``times`` times."""
    original = CELoss.forward
    counter = {"n": 0}

    def forward(self, inputs):
        terms = original(self, inputs)
        if not torch.is_grad_enabled():  # the dry evaluation at start-up is not a step
            return terms
        counter["n"] += 1
        if calls <= counter["n"] < calls + times:
            terms["CE"] = terms["CE"] * float("nan")
        return terms

    monkeypatch.setattr(CELoss, "forward", forward)


def test_nan_stops_the_run_naming_term_epoch_and_step(tiny_presets, monkeypatch):
    # 6 steps per epoch (192 images, batch 32): the 9th call is epoch 2, step 3.
    nan_after(monkeypatch, calls=9)
    result = kdtui("run", "tiny_teacher", "--headless", "--set", "train.log_every=5")
    assert result.exit_code == 2
    # Checked at step 5, reported at the step where it happened.
    assert "Loss term CE became nan at epoch 2, step 3" in result.output
    assert "the checkpoint of epoch 1 is kept" in result.output
    run = only_run()
    summary = run.read_summary()
    assert summary["status"] == "failed" and "CE" in summary["error"]
    state = torch.load(run.checkpoints / "last.pt", weights_only=True)
    assert state["epoch"] == 1 and all(torch.isfinite(v).all() for v in state["model"].values())


def test_nan_skip_policy_drops_bad_steps_up_to_a_limit(tiny_presets, monkeypatch):
    nan_after(monkeypatch, calls=3, times=2)
    result = kdtui("run", "tiny_teacher", "--headless", "--set", "train.nan_policy=skip")
    assert result.exit_code == 0, result.output
    run = only_run()
    assert run.read_summary()["status"] == "finished"
    assert "skipped step 3 of epoch 1: loss term CE" in run.log_path.read_text()

    nan_after(monkeypatch, calls=1)
    result = kdtui("run", "tiny_teacher", "--headless", "--set", "train.nan_policy=skip",
                   "--set", "train.nan_skip_limit=3", "--name", "limited")
    assert result.exit_code == 2 and "reaching train.nan_skip_limit" in result.output


def test_disk_full_while_checkpointing_keeps_the_last_good_checkpoint(tiny_presets, monkeypatch):
    import kdtui.engine.trainer as trainer

    real_save = trainer.save_checkpoint
    saves = {"n": 0}

    def full_disk(path, state):
        saves["n"] += 1
        if saves["n"] > 2:  # epoch 1 writes last.pt and best.pt; epoch 2's write fails
            raise OSError(errno.ENOSPC, "No space left on device")
        real_save(path, state)

    monkeypatch.setattr(trainer, "save_checkpoint", full_disk)
    result = kdtui("run", "tiny_teacher", "--headless", "--set", "train.epochs=3")
    assert result.exit_code == 2
    assert "No space left on device" in result.output and "--resume" in result.output
    run = only_run()
    assert run.read_summary()["status"] == "failed"
    assert torch.load(run.checkpoints / "last.pt", weights_only=True)["epoch"] == 1
    assert not [p for p in run.checkpoints.iterdir() if p.name.endswith(".tmp")]

    monkeypatch.setattr(trainer, "save_checkpoint", real_save)
    assert kdtui("run", "--resume", run.id).exit_code == 0
    assert [r.epoch for r in run.epochs()] == [1, 2, 3]


def test_runs_started_in_the_same_second_get_distinct_folders(tmp_path):
    runs = [create_run(tmp_path, "same") for _ in range(3)]
    assert len({run.path for run in runs}) == 3


def test_concurrent_runs_from_two_threads(tmp_path):
    made = []
    threads = [threading.Thread(target=lambda: made.append(create_run(tmp_path, "x"))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({run.path for run in made}) == 8


def test_readers_tolerate_partial_and_broken_run_folders(tmp_path):
    root = runs_root()
    good = create_run(root, "good")
    good.write_config({"student": {"arch": "wrn_16_1"}})
    good.metrics_path.write_text('{"event": "epoch", "epoch": 1}\n{"event": "ep')
    empty = create_run(root, "empty")  # a folder created but nothing written yet
    broken = create_run(root, "broken")
    broken.config_path.write_text(": : not yaml [")
    broken.summary_path.write_text("{truncated")
    assert read_jsonl(good.metrics_path) == [{"event": "epoch", "epoch": 1}]
    assert empty.read_summary() is None and broken.read_config() is None
    result = kdtui("runs", "ls")
    assert result.exit_code == 0 and "broken" in result.output
    for run in (good, empty, broken):
        assert kdtui("runs", "show", run.id).exit_code == 0


def test_resume_refuses_a_run_that_is_still_running(tiny_presets):
    run = create_run(runs_root(), "alive")
    run.write_config(load_config(tiny_presets / "tiny_teacher.yaml").to_dict())
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        import socket

        run.write_summary({"status": "running", "pid": sleeper.pid, "host": socket.gethostname()})
        result = kdtui("run", "--resume", run.id)
        assert result.exit_code == 2 and "still running" in result.output
        result = kdtui("runs", "rm", run.id, "--yes")
        assert result.exit_code == 2 and "still running" in result.output and run.path.exists()
    finally:
        sleeper.kill()
        sleeper.wait()
    assert kdtui("runs", "rm", run.id, "--yes").exit_code == 0 and not run.path.exists()


@pytest.mark.parametrize("name", ["bad\nname", "tab\tname", "..", "-leading-dash", "x" * 81])
def test_run_names_that_could_escape_or_confuse_are_refused(tiny_presets, name):
    result = kdtui("run", "tiny_teacher", "--headless", "--name", name)
    assert result.exit_code == 2 and "not allowed" in result.output
    assert not runs_root().exists() or not list(runs_root().iterdir())


def test_unwritable_runs_folder(tiny_presets, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    result = kdtui("run", "tiny_teacher", "--headless", "--runs-dir", str(blocker / "runs"))
    assert result.exit_code == 2 and "Cannot create the runs folder" in result.output


def test_run_ids_cannot_traverse_out_of_the_runs_folder(tmp_path, monkeypatch):
    """A reference that is not an existing run-folder path is looked up as an id or name
    inside the runs folder only; '..' never leads to a neighbouring run-like folder."""
    root = runs_root()
    root.mkdir(parents=True)
    outside = root.parent / "outside"
    outside.mkdir()
    (outside / "config.yaml").write_text("student: {arch: wrn_16_1}\n")
    cwd = tmp_path / "a" / "b"
    cwd.mkdir(parents=True)
    monkeypatch.chdir(cwd)  # so the references below are not existing paths from here
    for ref in ["../outside", "20260101-000000-x/../../outside", "../../outside/.."]:
        result = kdtui("runs", "show", ref, "--runs-dir", str(root))
        assert result.exit_code == 2 and "No run" in result.output, ref


def test_runs_rm_only_deletes_run_folders_of_the_runs_folder(tmp_path):
    victim = tmp_path / "project"
    victim.mkdir()
    (victim / "config.yaml").write_text("student: {arch: wrn_16_1}\n")
    result = kdtui("runs", "rm", str(victim), "--yes")
    assert result.exit_code == 2 and "not a run folder" in result.output and victim.exists()


def test_a_bare_name_matches_the_run_name_exactly():
    root = runs_root()
    fit, amdmis = create_run(root, "fit"), create_run(root, "amdmis")
    for run in (fit, amdmis):
        run.write_config({"student": {"arch": "wrn_16_1"}})
    assert kdtui("runs", "show", "it").exit_code == 2
    assert kdtui("runs", "show", "mis").exit_code == 2
    shown = kdtui("runs", "show", "fit")
    assert shown.exit_code == 0 and fit.id in shown.output


def test_an_incompatible_teacher_fails_before_any_run_folder(tiny_presets, tmp_path):
    from kdtui.models import build_model

    teacher = tmp_path / "r18.pt"
    torch.save(build_model("resnet18", 10).state_dict(), teacher)  # four stages vs WRN's three
    result = kdtui("run", "tiny_student", "--headless", "--set", f"teacher.checkpoint={teacher}",
                   "--set", "teacher.arch=resnet18")
    assert result.exit_code == 2 and "same number of stages" in result.output
    assert not runs_root().exists() or not list(runs_root().iterdir())


def test_auto_never_takes_a_shortened_run_for_the_teacher(tiny_presets):
    assert kdtui("run", "tiny_teacher", "--headless", "--set", "train.epochs=1").exit_code == 0
    result = kdtui("run", "tiny_student", "--headless", "--set", "train.epochs=1")
    assert result.exit_code == 0 and "training the teacher" in result.output
    result = kdtui("run", "tiny_student", "--headless", "--set", "train.epochs=1", "--name", "again")
    assert result.exit_code == 0 and "Teacher: run" in result.output


def test_an_unreadable_image_is_a_clear_error(tmp_path):
    from test_folders import write_images

    root = tmp_path / "imgs"
    for name in ("a", "b"):
        write_images(root / "train" / name, 2)
        write_images(root / "test" / name, 2)
    (root / "train" / "a" / "000.png").write_bytes(b"not an image")
    result = kdtui("run", "quickstart_teacher", "--headless", "--set", "data.dataset=imagefolder",
                   "--set", f"data.root={root}", "--set", "data.num_workers=0")
    assert result.exit_code == 2 and "Cannot read the image" in result.output and "000.png" in result.output


def test_resume_with_an_edited_config_is_a_clear_error(tiny_presets):
    import yaml

    stop = threading.Event()
    cfg = load_config(tiny_presets / "tiny_teacher.yaml", ["train.epochs=3"])
    run, _ = start_run(cfg, runs_root(), stop_event=stop, notify=lambda _: None,
                       sinks_for=lambda r, role: [RunStoreWriter(r), StopAfterEpoch(1, stop)])
    edited = run.read_config()
    edited["student"]["arch"] = "wrn_16_1"
    run.config_path.write_text(yaml.safe_dump(edited))
    result = kdtui("run", "--resume", run.id)
    assert result.exit_code == 2 and "does not belong to this run's config" in result.output


def test_relative_data_root_is_recorded_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = load_config(data={"student": {"arch": "wrn_16_1"}, "data": {"root": "datasets"}})
    assert cfg.data.root == str(tmp_path / "datasets")
