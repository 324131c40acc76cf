"""Studies in parallel: ``kdtui sweep --parallel N`` runs points in child processes at once,
trains a shared teacher once first, lets a failing point fail alone, skips finished points
on a re-run and stops every child cleanly on SIGTERM; ``--gpus`` gives each child its GPU;
``--slurm`` submits the same children through submitit (run here with its local executor)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from kdtui.cli import app
from kdtui.errors import KdtuiError
from kdtui.store import iter_runs, runs_root
from kdtui.study.expand import expand_study
from kdtui.study.parallel import child_command, cpu_slots, gpu_slots
from kdtui.study.runner import plan_study
from kdtui.study.spec import load_study

runner = CliRunner()
REPO = Path(__file__).resolve().parent.parent


def kdtui(*args: str):
    result = runner.invoke(app, list(args))
    result.flat = " ".join(result.output.split())
    return result


def runs_by_preset() -> dict[str, list]:
    found: dict[str, list] = {}
    for run in iter_runs(runs_root()):
        found.setdefault(run.read_config()["preset"], []).append(run)
    return found


def failing_study(tmp_path: Path) -> Path:
    """Two points of the tiny student (teacher 'auto'); the second asks for CIFAR-10 in a
    folder that does not exist, which only fails when its run loads the data."""
    study = tmp_path / "par.yaml"
    study.write_text(yaml.safe_dump({
        "name": "par", "base": "tiny_student", "set": {"train.epochs": 1},
        "points": [{}, {"data.dataset": "cifar10", "data.root": str(tmp_path / "no-data"),
                        "data.download": False}]}))
    return study


def test_parallel_study_with_a_failing_point_then_a_rerun(tiny_presets, tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(REPO))   # the children import this checkout
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    study = failing_study(tmp_path)
    result = kdtui("sweep", str(study), "--parallel", "2")
    assert result.exit_code == 1, result.output
    assert "training 1 shared teacher(s) first" in result.flat
    assert "2 run(s) to do, 2 at a time (CPU process 1, CPU process 2)" in result.flat
    assert "point 2/2 failed (exit 1)" in result.flat and "CIFAR-10" in result.flat
    assert "study par: 1 done, 1 failed, 0 skipped" in result.flat
    runs = runs_by_preset()
    assert len(runs["tiny_teacher"]) == 1                      # trained once, before the fan-out
    (point,) = runs["tiny_student"]
    summary = point.summary()
    assert point.id.endswith("-par-p1-s0") and summary.status == "finished"
    assert summary.study_record.id == "par" and summary.study_record.index == 1
    logs = sorted(p.name for p in (runs_root() / ".sweeps" / "par").iterdir())
    assert logs == ["par-p1-s0.log", "par-p1-s0.teacher.log", "par-p2-s0.log"]

    again = kdtui("sweep", str(study), "--parallel", "2")
    assert again.exit_code == 1, again.output
    assert "1 run(s) to do" in again.flat and "shared teacher" not in again.flat
    assert "study par: 0 done, 1 failed, 1 skipped" in again.flat
    assert [r.id for r in runs_by_preset()["tiny_student"]] == [point.id]


def test_sigterm_stops_every_child_cleanly(tiny_presets, tmp_path):
    study = tmp_path / "long.yaml"
    study.write_text(yaml.safe_dump({
        "name": "long", "base": "tiny_teacher", "set": {"train.epochs": 50},
        "grid": {"train.lr": [0.05, 0.1]}, "seeds": [0]}))
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    sweep = subprocess.Popen([sys.executable, "-m", "kdtui", "sweep", str(study), "--parallel", "2"],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 240
    while time.time() < deadline:   # both points training (an epoch recorded)
        runs = list(iter_runs(runs_root()))
        if len(runs) == 2 and all(run.epochs() for run in runs):
            break
        time.sleep(0.5)
    sweep.send_signal(signal.SIGTERM)
    output = sweep.communicate(timeout=240)[0]
    assert sweep.returncode == 128 + signal.SIGTERM, output
    runs = list(iter_runs(runs_root()))
    assert len(runs) == 2, output
    assert [run.summary().status for run in runs] == ["stopped", "stopped"], output
    assert "stopped" in output


def test_gpu_slots_give_each_child_its_gpu_and_cuda(tiny_presets, tmp_path):
    slots = gpu_slots("0, 2")
    assert [s.env for s in slots] == [{"CUDA_VISIBLE_DEVICES": "0"}, {"CUDA_VISIBLE_DEVICES": "2"}]
    assert all(s.overrides == ["train.device=cuda"] for s in slots)
    assert len(cpu_slots(3)) == 3
    spec = load_study(failing_study(tmp_path))
    command = child_command(spec, 2, runs_root(), ["train.epochs=1", *slots[1].overrides])
    assert command[1:] == ["-m", "kdtui", "sweep", str(spec.path), "--only", "2", "--headless",
                           "--runs-dir", str(runs_root()), "--set", "train.epochs=1",
                           "--set", "train.device=cuda"]
    for bad in ("", "a,1", "0;1"):
        with pytest.raises(KdtuiError, match="--gpus"):
            gpu_slots(bad)
    both = kdtui("sweep", str(spec.path), "--parallel", "2", "--gpus", "0")
    assert both.exit_code == 2 and "give one" in both.flat
    out_of_range = kdtui("sweep", str(spec.path), "--only", "3")
    assert out_of_range.exit_code == 2 and "--only: got 3, expected a run number from 1 to 2" in out_of_range.flat


def test_slurm_submission_through_submitit_runs_teacher_then_the_array(tiny_presets, tmp_path, monkeypatch):
    pytest.importorskip("submitit")
    from kdtui.study.slurm import slurm_parameters, submit_study

    monkeypatch.setenv("PYTHONPATH", str(REPO))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    study = tmp_path / "sl.yaml"
    study.write_text(yaml.safe_dump({"name": "sl", "base": "tiny_student", "set": {"train.epochs": 1},
                                     "grid": {"loss.amd.weight": [1000, 5000]}, "seeds": [0]}))
    spec = load_study(study)
    plans = plan_study(spec, expand_study(spec), runs_root())
    assert slurm_parameters(["slurm_partition=gpu", "timeout_min=90"], 4) == {
        "nodes": 1, "tasks_per_node": 1, "gpus_per_node": 1, "timeout_min": 90,
        "slurm_partition": "gpu", "slurm_array_parallelism": 4}
    with pytest.raises(KdtuiError, match="KEY=VALUE"):
        slurm_parameters(["gpu"], None)
    # submitit's local executor: the very jobs SLURM would get, as local processes.
    message, jobs = submit_study(spec, plans, runs_root(), [], ["gpus_per_node=0"], None, None,
                                 cluster="local")
    assert "submitted 2 run(s)" in message and "teacher job" in message
    for job in jobs:
        job.result()    # raises if the job's command failed
    runs = runs_by_preset()
    assert len(runs["tiny_teacher"]) == 1
    assert sorted(r.id.split("-", 2)[2] for r in runs["tiny_student"]) == ["sl-p1-s0", "sl-p2-s0"]
    assert all(r.summary().status == "finished" for r in runs["tiny_student"])
    again, jobs = submit_study(spec, plan_study(spec, expand_study(spec), runs_root()), runs_root(),
                               [], [], None, None, cluster="local")
    assert "nothing to submit" in again and jobs == []
    no_sbatch = kdtui("sweep", str(study), "--slurm")
    assert no_sbatch.exit_code == 2 and "sbatch is not on PATH" in no_sbatch.flat
