"""End-to-end: tiny runs through the CLI and the engine on the built-in shapes data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

from kdtui.cli import app
from kdtui.config import load_config
from kdtui import events as ev
from kdtui.engine.launch import resume_run, start_run
from kdtui.errors import CheckpointError
from kdtui.store import RunDir, iter_runs, runs_root

runner = CliRunner()
EPOCH_KEYS = {"event", "epoch", "lr", "loss", "train_acc", "test_acc", "img_per_s", "time_s"}
SUMMARY_KEYS = {"status", "epochs", "epochs_done", "best_test_acc", "final_test_acc",
                "teacher_test_acc", "wall_time_s"}


class Result:
    """CLI result with the output's line wrapping undone (rich wraps at the terminal width)."""

    def __init__(self, raw) -> None:
        self.exit_code = raw.exit_code
        self.output = " ".join(raw.output.split())


def kdtui(*args: str) -> Result:
    return Result(runner.invoke(app, list(args)))


def assert_complete(run: RunDir, epochs: int, terms: set[str]) -> None:
    assert (run.checkpoints / "last.pt").exists() and (run.checkpoints / "best.pt").exists()
    assert run.log_path.read_text().strip()
    summary = run.read_summary()
    assert SUMMARY_KEYS <= summary.keys()
    assert summary["status"] == "finished" and summary["epochs_done"] == epochs == summary["epochs"]
    records = [r for r in run.read_metrics() if r["event"] == "epoch"]  # the file format itself
    assert [r["epoch"] for r in records] == list(range(1, epochs + 1))
    for record in records:
        assert EPOCH_KEYS <= record.keys()
        assert set(record["loss"]) == terms | {"total"}
        assert 0 <= record["test_acc"] <= 100
    assert summary["final_test_acc"] == records[-1]["test_acc"]
    assert summary["best_test_acc"] == max(r["test_acc"] for r in records)
    load_config(data=run.read_config())  # config.yaml is itself a valid preset


def test_quick_run_trains_teacher_first_and_writes_complete_run_dirs(tiny_presets):
    result = kdtui("run", "tiny_student", "--headless")
    assert result.exit_code == 0, result.output
    assert "training the teacher" in result.output
    runs = {run.read_config()["preset"]: run for run in iter_runs(runs_root())}
    teacher, student = runs["tiny_teacher"], runs["tiny_student"]
    assert_complete(teacher, 2, {"CE"})
    assert_complete(student, 3, {"CE", "KD", "A", "P", "N"})
    assert student.read_config()["teacher"]["checkpoint"] == teacher.id
    assert student.read_summary()["teacher_test_acc"] is not None
    assert student.read_summary()["describe"] == {"dataset": "shapes", "student": "wrn_10_1",
                                                  "teacher": "wrn_10_1", "method": "amd(g+l)+ce+kd",
                                                  "epochs": 3}
    steps = [r for r in student.read_metrics() if r["event"] == "step"]
    assert steps and {"epoch", "step", "global_step", "loss", "lr"} <= steps[0].keys()

    # A second student run reuses the finished teacher instead of training another.
    result = kdtui("run", str(tiny_presets / "tiny_student.yaml"), "--headless", "--name", "again",
                   "--set", "train.epochs=1")
    assert result.exit_code == 0, result.output
    assert "training the teacher" not in result.output
    assert len(list(iter_runs(runs_root()))) == 3

    listing = kdtui("runs", "ls")
    assert listing.exit_code == 0 and teacher.id in listing.output
    shown = kdtui("runs", "show", student.id)
    assert shown.exit_code == 0 and "finished" in shown.output and "wrn_10_1" in shown.output


class StopAfterEpoch:
    def __init__(self, epoch: int, stop: threading.Event) -> None:
        self.epoch, self.stop = epoch, stop

    def __call__(self, event: ev.Event) -> None:
        if isinstance(event, ev.EpochEnd) and event.epoch == self.epoch:
            self.stop.set()


def test_resume_after_stop_continues_and_matches_uninterrupted(tiny_presets):
    from kdtui.store import RunStoreWriter

    root = runs_root()
    cfg = lambda: load_config(tiny_presets / "tiny_teacher.yaml", ["train.epochs=3"])  # noqa: E731
    _, full = start_run(cfg(), root, name="full", sinks_for=lambda r, role: [RunStoreWriter(r)], notify=lambda _: None)
    assert isinstance(full, ev.RunFinished)

    stop = threading.Event()
    run, ended = start_run(cfg(), root, name="cut", stop_event=stop, notify=lambda _: None,
                           sinks_for=lambda r, role: [RunStoreWriter(r), StopAfterEpoch(1, stop)])
    assert isinstance(ended, ev.RunStopped)
    assert run.read_summary()["status"] == "stopped" and run.read_summary()["epochs_done"] == 1

    result = kdtui("run", "--resume", run.id)
    assert result.exit_code == 0, result.output
    assert [r.epoch for r in run.epochs()] == [1, 2, 3]
    full_run = next(r for r in iter_runs(root) if r.id.endswith("-full"))
    for resumed, straight in zip(run.epochs(), full_run.epochs()):
        assert resumed.test_acc == pytest.approx(straight.test_acc, abs=1e-6)
        assert resumed.loss["total"] == pytest.approx(straight.loss["total"], rel=1e-4)
    # env.json: the first start's environment, then one entry per resume.
    environment = run.environment()
    assert environment["started"]["torch"] == torch.__version__
    assert environment["started"]["python"] == ".".join(map(str, sys.version_info[:3]))
    assert environment["started"]["cpu_count"] == os.cpu_count()
    assert [e["command"] for e in environment["resumed"]] == [sys.argv]  # the CLI ran in-process
    assert "environment" in kdtui("runs", "show", run.id).output


def test_sinks_are_told_each_run_folders_role(tiny_presets):
    from kdtui.store import RunStoreWriter

    roles = []

    def sinks_for(run, role):
        roles.append((run.read_config()["preset"], role))
        return [RunStoreWriter(run)]

    start_run(load_config(tiny_presets / "tiny_student.yaml", ["train.epochs=1"]), runs_root(),
              sinks_for=sinks_for, notify=lambda _: None)
    assert roles == [("tiny_teacher", "teacher"), ("tiny_student", "student")]


def test_test_accuracy_is_computed_in_float32_even_when_training_uses_autocast(tiny_presets):
    from kdtui.data import build_data
    from kdtui.engine.trainer import Trainer

    cfg = load_config(tiny_presets / "tiny_teacher.yaml", ["train.epochs=1"])
    trainer = Trainer(cfg, build_data(cfg.data), teacher=None, teacher_id=None, sinks=[])
    trainer.use_amp = True  # as on a CUDA device with train.amp
    autocast_seen = []

    def forward(images):
        autocast_seen.append(torch.is_autocast_enabled(images.device.type))
        return trainer.student(images)

    trainer.student.eval()
    assert 0 <= trainer.evaluate(forward) <= 100
    assert autocast_seen and not any(autocast_seen)


def test_resume_after_kill_between_metrics_and_checkpoint(tiny_presets):
    """A kill after an epoch's metrics line but before its checkpoint, plus a torn line."""
    from kdtui.store import RunStoreWriter

    stop = threading.Event()
    cfg = load_config(tiny_presets / "tiny_teacher.yaml", ["train.epochs=3"])
    run, _ = start_run(cfg, runs_root(), stop_event=stop, notify=lambda _: None,
                       sinks_for=lambda r, role: [RunStoreWriter(r), StopAfterEpoch(2, stop)])
    # Pretend the process died: epoch 2's checkpoint was never written and a line is torn.
    torch.save(torch.load(run.checkpoints / "last.pt", weights_only=True) | {"epoch": 1},
               run.checkpoints / "last.pt")
    with run.metrics_path.open("a") as handle:
        handle.write('{"event": "epoch", "epo')
    summary = run.read_summary() | {"status": "running"}
    run.write_summary(summary)

    _, ended = resume_run(run.id, runs_root(), sinks_for=lambda r, role: [RunStoreWriter(r)], notify=lambda _: None)
    assert isinstance(ended, ev.RunFinished)
    assert [r.epoch for r in run.epochs()] == [1, 2, 3]
    lines = run.metrics_path.read_text().splitlines()
    assert all(json.loads(line) for line in lines)  # the torn line is gone


def test_resume_errors(tiny_presets):
    result = kdtui("run", "--resume", "20990101-000000-nothing")
    assert result.exit_code == 2 and "No run" in result.output
    assert kdtui("run", "tiny_teacher", "--headless", "--set", "train.epochs=1").exit_code == 0
    finished = next(iter_runs(runs_root()))
    result = kdtui("run", "--resume", finished.id)
    assert result.exit_code == 2 and "already finished" in result.output


def test_missing_cifar10_is_a_clear_error_and_leaves_no_run(tiny_presets, monkeypatch, tmp_path):
    import urllib.error
    import urllib.request

    def offline(*args, **kwargs):
        raise urllib.error.URLError("network is unreachable")

    # The real torchvision download code runs, up to the network call.
    monkeypatch.setattr(urllib.request, "urlopen", offline)
    preset = Path(__file__).resolve().parent.parent / "presets" / "cifar10_amd.yaml"
    result = kdtui("run", str(preset), "--headless", "--set", "train.epochs=1")
    assert result.exit_code == 2, result.output
    text = result.output
    assert str(tmp_path / "data" / "cifar-10-batches-py") in text
    assert "cifar-10-python.tar.gz" in text and "data.root" in text
    assert "Traceback" not in result.output
    assert not list(iter_runs(runs_root()))

    result = kdtui("run", str(preset), "--headless", "--set", "data.download=false")
    assert result.exit_code == 2 and "data.download is false" in result.output


@pytest.mark.parametrize("args,pattern", [
    (["run", "tiny_teacher", "--headless", "--name", "../escape"], "not allowed"),
    (["run", "tiny_teacher", "--headless", "--name", "a/b"], "not allowed"),
    (["run", "tiny_teacher", "--headless", "--set", "train.lr=-1"], "train.lr"),
    (["run", "no_such_preset", "--headless"], "No preset named"),
    (["run", "--headless"], "Give either a PRESET"),
])
def test_bad_cli_input_exits_2_without_a_run_folder(tiny_presets, args, pattern):
    result = kdtui(*args)
    assert result.exit_code == 2, result.output
    assert pattern in result.output and "Traceback" not in result.output
    assert not list(iter_runs(runs_root()))


class Payload:
    """A pickled object inside a checkpoint: what weights_only=True must refuse."""


def test_teacher_checkpoint_problems(tiny_presets, tmp_path):
    from kdtui.engine.checkpoint import extract_state_dict, load_checkpoint, load_weights
    from kdtui.models import build_model

    wrong = tmp_path / "wrong.pt"
    torch.save(build_model("wrn_16_2", 10).state_dict(), wrong)
    student = str(tiny_presets / "tiny_student.yaml")
    result = kdtui("run", student, "--headless", "--set", f"teacher.checkpoint={wrong}",
                   "--set", "teacher.arch=wrn_10_1")
    assert result.exit_code == 2
    assert "does not fit architecture wrn_10_1" in result.output

    result = kdtui("run", student, "--headless", "--set", f"teacher.checkpoint={tmp_path / 'gone.pt'}",
                   "--set", "teacher.arch=wrn_10_1")
    assert result.exit_code == 2 and "does not exist" in result.output

    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_checkpoint(corrupt)

    pickled = tmp_path / "pickled.pt"
    torch.save({"model": build_model("wrn_10_1", 10).state_dict(), "extra": Payload()}, pickled)
    with pytest.raises(CheckpointError, match="weights_only"):
        load_checkpoint(pickled)

    good = tmp_path / "good.pt"
    net = build_model("wrn_10_1", 10)
    torch.save({"state_dict": {f"module.{k}": v for k, v in net.state_dict().items()}}, good)
    load_weights(build_model("wrn_10_1", 10), extract_state_dict(load_checkpoint(good), good), good, "wrn_10_1")


def test_help_does_not_import_torch():
    code = ("import sys\nfrom kdtui.cli import app\n"
            "try:\n    app(['--help'])\nexcept SystemExit:\n    pass\n"
            "assert 'torch' not in sys.modules, 'kdtui --help imported torch'\n")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                   env={**os.environ, "COLUMNS": "100"})


def test_presets_command_lists_names_and_descriptions(tiny_presets):
    result = kdtui("presets")
    assert result.exit_code == 0 and "tiny_teacher" in result.output and "tiny student" in result.output


def test_resume_refuses_overrides_and_name():
    result = kdtui("run", "--resume", "20261128-101500-x", "--set", "train.lr=0.1")
    assert result.exit_code == 2 and "--set and --name cannot be used" in result.output


def test_a_runs_dir_before_the_subcommand_applies_to_it(tmp_path):
    (tmp_path / "elsewhere" / "20261128-101500-far").mkdir(parents=True)
    result = kdtui("--runs-dir", str(tmp_path / "elsewhere"), "runs", "ls")
    assert result.exit_code == 0 and "20261128-101500-far" in result.output


def test_a_teacher_trained_on_the_way_takes_only_the_model_independent_overrides():
    from kdtui.engine.launch import inherited

    overrides = (("data.root", "/data"), ("train.lr", 0.05), ("preset", "mine"),
                 ("train.device", "cpu"), ("loss.kd.weight", 2.0), ("data.num_workers", 0))
    assert inherited(overrides) == (("data.root", "/data"), ("train.device", "cpu"),
                                    ("data.num_workers", 0))


def test_torchvision_teacher_loads_from_the_cache_and_offline_is_a_clear_error(tmp_path, monkeypatch):
    import torchvision

    from kdtui.config import TeacherConfig
    from kdtui.engine.teacher import find_teacher, load_teacher
    from kdtui.errors import ConfigError, KdtuiError

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    cache = tmp_path / "torch" / "hub" / "checkpoints" / "resnet18-f37072fd.pth"

    def offline(url, dst, progress=True):
        raise OSError("Network is unreachable")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(KdtuiError) as missing:
        find_teacher(TeacherConfig(checkpoint="torchvision:resnet18"), tmp_path)
    message = str(missing.value)
    assert str(cache) in message and "resnet18-f37072fd.pth" in message and "Network is unreachable" in message
    # The file in torch's cache (as torchvision's download would leave it) loads, offline.
    cache.parent.mkdir(parents=True, exist_ok=True)
    reference = torchvision.models.resnet18(weights=None)
    torch.save(reference.state_dict(), cache)
    source = find_teacher(TeacherConfig(checkpoint="torchvision:resnet18"), tmp_path)
    assert (source.arch, source.reference) == ("resnet18", "torchvision:resnet18.IMAGENET1K_V1")
    teacher = load_teacher(source, 1000)
    assert torch.equal(teacher.state_dict()["fc.weight"], reference.state_dict()["fc.weight"])
    with pytest.raises(ConfigError, match="resnet18, torchvision:resnet34"):
        find_teacher(TeacherConfig(checkpoint="torchvision:vgg11"), tmp_path)
    with pytest.raises(ConfigError, match="teacher.arch"):
        find_teacher(TeacherConfig(checkpoint="torchvision:resnet18", arch="resnet34"), tmp_path)
