"""`kdtui sweep` end to end on the built-in shapes data with tiny presets: the teacher is
trained once, Ctrl-C stops the sweep (exit 130), a killed run is resumed, nothing runs
twice, a failing point does not stop the others, and `kdtui table` reads the result."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import yaml
from typer.testing import CliRunner

from kdtui.cli import app
from kdtui.console import HeadlessConsole
from kdtui.store import iter_runs, runs_root

runner = CliRunner()


def kdtui(*args: str):
    result = runner.invoke(app, list(args))
    result.flat = " ".join(result.output.split())
    return result


def study_runs() -> dict[str, object]:
    """Run name → run folder, for the study's runs (teachers left out)."""
    found = {}
    for run in iter_runs(runs_root()):
        summary = run.summary()
        record = summary.study_record if summary else None
        if record is not None:
            assert run.id.split("-", 2)[2] not in found, "a point ran twice"
            found[run.id.split("-", 2)[2]] = run
    return found


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_sweep_stop_kill_resume_skip_and_table(tiny_presets, tmp_path, monkeypatch):
    study = tmp_path / "mini.yaml"
    study.write_text(yaml.safe_dump({
        "name": "mini", "base": "tiny_student", "set": {"train.epochs": 2},
        "grid": {"loss.amd.weight": [1000, 5000]}, "seeds": [0, 1],
        "reported": {"loss.amd.weight": {5000: {"value": 86.3, "source": "Fig. 8a"}}}}))

    # Ctrl-C during the first point's first epoch: that run stops cleanly, the sweep ends (130).
    started = {}
    on_start, on_epoch = HeadlessConsole.on_start, HeadlessConsole.on_epoch

    def spy_start(self, event):
        started["run"] = event.run_id
        on_start(self, event)

    def interrupt_first_student(self, event):
        on_epoch(self, event)
        if "-mini-" in started["run"] and not started.get("sent"):
            started["sent"] = True
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(HeadlessConsole, "on_start", spy_start)
    monkeypatch.setattr(HeadlessConsole, "on_epoch", interrupt_first_student)
    result = kdtui("sweep", str(study), "--headless")
    assert result.exit_code == 130, result.output
    assert result.flat.count("training the teacher") == 1
    (first,) = study_runs().values()
    assert first.id.endswith("-mini-p1-s0") and first.summary().status == "stopped"
    assert first.summary().epochs_done == 1
    monkeypatch.setattr(HeadlessConsole, "on_epoch", on_epoch)

    # What a kill -9 mid-run leaves: "running", written by a process that is gone.
    summary = first.summary()
    summary.status, summary.pid, summary.host = "running", dead_pid(), socket.gethostname()
    first.write_summary(summary)
    dry = kdtui("sweep", str(study), "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert f"resume ({first.id}, crashed)" in dry.flat and dry.flat.count("would run") == 3 + 1

    result = kdtui("sweep", str(study), "--headless")
    assert result.exit_code == 0, result.output
    assert "training the teacher" not in result.flat and f"resuming {first.id} (crashed)" in result.flat
    assert "point 4/4" in result.flat and "study ETA" in result.flat
    assert "study mini: 4 done, 0 failed, 0 skipped" in result.flat
    runs = study_runs()
    assert sorted(runs) == ["mini-p1-s0", "mini-p1-s1", "mini-p2-s0", "mini-p2-s1"]
    assert [r.epoch for r in runs["mini-p1-s0"].epochs()] == [1, 2]         # resumed, not restarted
    record = runs["mini-p2-s1"].summary().study_record
    assert (record.id, record.index, record.point) == ("mini", 2, {"loss.amd.weight": 5000, "train.seed": 1})
    assert record.reported == {"value": 86.3, "source": "Fig. 8a"}
    assert runs["mini-p2-s1"].read_config()["train"]["seed"] == 1
    teachers = [r for r in iter_runs(runs_root()) if r.read_config()["preset"] == "tiny_teacher"]
    assert len(teachers) == 1

    # Again: nothing to do.
    count = len(list(iter_runs(runs_root())))
    result = kdtui("sweep", str(study), "--headless")
    assert result.exit_code == 0 and "0 done, 0 failed, 4 skipped" in result.flat
    assert len(list(iter_runs(runs_root()))) == count
    # A smoke-test variant (another epochs count) is not taken for the real points.
    dry = kdtui("sweep", str(study), "--dry-run", "--set", "train.epochs=1")
    assert dry.flat.count("would run (ignoring 1 run(s) of this point with another config)") == 4

    table = kdtui("table", "--study", "mini")
    assert table.exit_code == 0, table.output
    lines = [line.split() for line in table.output.splitlines()]
    assert [line[:2] for line in lines if line and line[0] in ("1000", "5000")] == [["1000", "2"], ["5000", "2"]]
    assert any(line[0] == "5000" and "86.30" in line for line in lines if line)


def test_a_failing_point_is_reported_and_the_sweep_goes_on(tiny_presets, tmp_path):
    study = tmp_path / "fails.yaml"
    missing = tmp_path / "no-data"
    study.write_text(yaml.safe_dump({
        "name": "fails", "base": "tiny_teacher", "set": {"train.epochs": 1},
        "points": [{"data.dataset": "cifar10", "data.root": str(missing), "data.download": False}, {}]}))
    result = kdtui("sweep", str(study))
    assert result.exit_code == 1, result.output
    assert "point 1/2 failed" in result.flat and "CIFAR-10" in result.flat
    assert "study fails: 1 done, 1 failed, 0 skipped" in result.flat
    assert sorted(study_runs()) == ["fails-p2-s0"]


def test_quickstart_study_is_cpu_sized():
    path = Path(__file__).resolve().parent.parent / "presets" / "studies" / "quickstart_gamma.yaml"
    raw = yaml.safe_load(path.read_text())
    assert raw["set"]["train.epochs"] == 1 and len(raw["seeds"]) * len(raw["grid"]["loss.amd.weight"]) == 4
