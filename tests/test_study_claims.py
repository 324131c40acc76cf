"""A sweep shares its runs folder safely: two sweeps of one study started together never
run a point twice (nor its shared teacher), and a point killed before training wrote
anything leaves a run folder that names its point, which the next sweep resumes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml
from typer.testing import CliRunner

from kdtui.cli import app
from kdtui.store import claim, effective_status, iter_runs, runs_root
from kdtui.study.expand import expand_study
from kdtui.study.runner import point_claim
from kdtui.study.spec import load_study

runner = CliRunner()
REPO = Path(__file__).resolve().parent.parent


def write_study(tmp_path: Path, name: str, points: int = 2) -> Path:
    study = tmp_path / f"{name}.yaml"
    study.write_text(yaml.safe_dump({
        "name": name, "base": "tiny_student", "set": {"train.epochs": 1},
        "grid": {"loss.amd.weight": [1000, 5000][:points]}, "seeds": [0]}))
    return study


def runs_by_preset() -> dict[str, list]:
    found: dict[str, list] = {}
    for run in iter_runs(runs_root()):
        found.setdefault(run.read_config()["preset"], []).append(run)
    return found


def sweep_process(study: Path, *prefix: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, *prefix, "sweep", str(study), "--headless"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_two_sweeps_of_one_study_at_once_run_each_point_and_the_teacher_once(tiny_presets, tmp_path):
    study = write_study(tmp_path, "twice")
    first, second = (sweep_process(study, "-m", "kdtui") for _ in range(2))
    outputs = [process.communicate(timeout=300)[0] for process in (first, second)]
    assert [first.returncode, second.returncode] == [0, 0], outputs
    runs = runs_by_preset()
    assert len(runs["tiny_teacher"]) == 1, outputs          # the other sweep waited for it
    names = sorted(run.id.split("-", 2)[2] for run in runs["tiny_student"])
    assert names == ["twice-p1-s0", "twice-p2-s0"], outputs  # each point once
    assert all(run.summary().status == "finished" for run in runs["tiny_student"])
    joined = " ".join(" ".join(outputs).split())
    assert "skipped" in joined                               # one sweep left a point to the other


def test_a_point_another_process_claims_is_skipped_not_started(tiny_presets, tmp_path):
    study = write_study(tmp_path, "claimed")
    spec = load_study(study)
    first = expand_study(spec)[0]
    with claim(runs_root(), point_claim(spec, first)) as mine:
        assert mine
        result = runner.invoke(app, ["sweep", str(study), "--headless"])
    flat = " ".join(result.output.split())
    assert result.exit_code == 0, result.output
    assert "point 1/2: another sweep is running it now; skipped." in flat
    assert [run.id.split("-", 2)[2] for run in runs_by_preset()["tiny_student"]] == ["claimed-p2-s0"]


KILL_AT_FIT = """
import os, signal, sys
from kdtui.engine import trainer
from kdtui.cli import app
# The point's run is killed (SIGKILL: no handler, no cleanup) as its training is about to
# begin: after its run folder is made, before the trainer writes a line of its own. The
# teacher trained first for it is left alone.
fit = trainer.Trainer.fit
trainer.Trainer.fit = lambda self, run, resume=False: (
    os.kill(os.getpid(), signal.SIGKILL) if "-killed-" in run.id else fit(self, run, resume))
sys.argv = ["kdtui", *sys.argv[1:]]
app()
"""


def test_a_point_killed_before_its_first_summary_is_resumed_in_its_own_folder(tiny_presets, tmp_path):
    study = write_study(tmp_path, "killed", points=1)
    killed = sweep_process(study, "-c", KILL_AT_FIT)
    output = killed.communicate(timeout=300)[0]
    assert killed.returncode == -9, output
    (folder,) = runs_by_preset()["tiny_student"]
    summary = folder.summary()
    assert summary.study_record.id == "killed" and summary.study_record.index == 1
    assert effective_status(summary) == "crashed"               # not "starting" forever

    dry = runner.invoke(app, ["sweep", str(study), "--dry-run"])
    assert f"resume ({folder.id}, crashed)" in " ".join(dry.output.split()), dry.output
    result = runner.invoke(app, ["sweep", str(study), "--headless"])
    flat = " ".join(result.output.split())
    assert result.exit_code == 0, result.output
    assert f"resuming {folder.id} (crashed)" in flat and "1 done" in flat
    (again,) = runs_by_preset()["tiny_student"]                 # the same folder, finished
    assert again.id == folder.id and again.summary().status == "finished"
    assert [record.epoch for record in again.epochs()] == [1]
    assert again.summary().study_record.point == {"loss.amd.weight": 1000, "train.seed": 0}
    assert not list(runs_root().glob(".creating*"))             # nothing half-made left behind
    plain = tmp_path / "plain"
    plain.mkdir()                                               # the umask's permissions, not 0700
    assert again.path.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777
