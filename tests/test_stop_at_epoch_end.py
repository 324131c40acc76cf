"""The second kind of stop: finish the current epoch, checkpoint it, then stop (SIGUSR1 to a
training process; ``StopRequest.at_epoch_end`` in process)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from kdtui import events as ev
from kdtui.config import load_config
from kdtui.engine.checkpoint import load_checkpoint
from kdtui.engine.launch import start_run
from kdtui.store import RunStoreWriter, iter_runs, runs_root


class AskAtStep:
    """A sink asking for a stop at the end of the epoch at the first step of ``epoch``."""

    def __init__(self, epoch: int, stop: ev.StopRequest) -> None:
        self.epoch, self.stop = epoch, stop

    def __call__(self, event: ev.Event) -> None:
        if isinstance(event, ev.StepMetrics) and event.epoch == self.epoch:
            self.stop.at_epoch_end.set()


def test_a_stop_at_epoch_end_finishes_and_checkpoints_the_epoch(tiny_presets):
    stop = ev.StopRequest()
    cfg = load_config(tiny_presets / "tiny_teacher.yaml", ["train.epochs=4"])
    run, ended = start_run(cfg, runs_root(), stop_event=stop, notify=lambda _: None,
                           sinks_for=lambda r, role: [RunStoreWriter(r), AskAtStep(2, stop)])
    assert isinstance(ended, ev.RunStopped) and ended.epochs_done == 2
    summary = run.summary()
    assert summary.status == "stopped" and summary.epochs_done == 2
    assert [r.epoch for r in run.epochs()] == [1, 2]        # epoch 2 whole, none abandoned
    steps = [r for r in run.records() if r.kind == "step" and r.epoch == 2]
    assert steps[-1].step == steps[-1].steps_per_epoch
    assert load_checkpoint(run.checkpoints / "last.pt")["epoch"] == 2
    assert "stopped at the end of epoch 2" in run.log_path.read_text()


def test_sigusr1_stops_a_headless_run_after_its_epoch(tiny_presets):
    process = subprocess.Popen([sys.executable, "-m", "kdtui", "run", "tiny_teacher", "--headless",
                                "--set", "train.epochs=50", "--set", "train.log_every=1"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            runs = list(iter_runs(runs_root()))
            if runs and any(r.kind == "step" for r in runs[0].records()):
                break
            time.sleep(0.05)
        process.send_signal(signal.SIGUSR1)
        output = process.communicate(timeout=120)[0]
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 128 + signal.SIGUSR1, output
    (run,) = list(iter_runs(runs_root()))
    summary = run.summary()
    epochs = run.epochs()
    assert summary.status == "stopped" and 1 <= summary.epochs_done < 50
    assert epochs[-1].epoch == summary.epochs_done            # the epoch asked in was finished
    assert load_checkpoint(run.checkpoints / "last.pt")["epoch"] == summary.epochs_done
