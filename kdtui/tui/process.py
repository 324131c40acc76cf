"""Training processes started by the app, and stopping any run by its process id.

The app trains in a separate process: ``python -m kdtui run … --headless`` in a session of
its own, writing to the run folder like any headless run. So training never shares the
UI's event loop or interpreter lock, and quitting the app may leave the run going (watch it
later with ``kdtui watch``). The child appends each run folder it creates (the teacher
first, when 'auto' has to train one, then the student) to an announce file the app reads
(:mod:`kdtui.store.announce`).

Usage::

    launch = Launch.start(["presets/quickstart.yaml", "--set", "train.epochs=2"], runs_root())
    launch.announced()      # [(Path('runs/20261128-101500-quickstart_teacher'), 'teacher'), ...]
    stop_run(run.summary()) # SIGTERM to the run's process: it checkpoints and stops
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from kdtui.store import Summary, writer_alive
from kdtui.store.announce import read_announcements
from kdtui.tui.priority import spawn


def launches_dir(root: Path) -> Path:
    # A dot-folder of the runs folder: never mistaken for a run, kept for post-mortems.
    return root / ".launches"


@dataclass
class Launch:
    """A ``kdtui run --headless`` (or ``kdtui sweep --headless``) child process started by the app."""

    process: subprocess.Popen
    root: Path
    announce_path: Path
    output_path: Path
    args: list[str]
    command: str = "run"     # or "sweep": a study, whose runs the studies screen follows

    @classmethod
    def start(cls, run_args: list[str], root: Path) -> "Launch":
        return cls.spawn(["run", *run_args], root, run_args, announce=True)

    @classmethod
    def start_sweep(cls, study_file: Path, root: Path) -> "Launch":
        """``kdtui sweep FILE --headless``: a study, its points one after another (a sweep
        announces no run folder: the studies screen reads the study's runs from the folder)."""
        return cls.spawn(["sweep", str(study_file)], root, [str(study_file)], announce=False)

    @classmethod
    def spawn(cls, args: list[str], root: Path, run_args: list[str], announce: bool) -> "Launch":
        folder = launches_dir(root)
        folder.mkdir(parents=True, exist_ok=True)
        stem = f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{time.monotonic_ns() % 10**6}"
        announce_path = folder / f"{stem}.runs"
        output = folder / f"{stem}.log"
        command = [sys.executable, "-m", "kdtui", *args, "--headless", "--runs-dir", str(root),
                   *(["--announce", str(announce_path)] if announce else [])]
        with output.open("wb") as out:
            # Started on the spawner thread: the run trains at the priority the app started
            # with, not the lower one the app draws at (see kdtui.tui.priority).
            process = spawn(lambda: subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,  # survives the app quitting; Ctrl-C in the app is not its
                env={**os.environ, "PYTHONUNBUFFERED": "1"}))
        return cls(process, root, announce_path, output, list(run_args), args[0])

    def announced(self) -> list[tuple[Path, str]]:
        """(run folder, role) of each run the child has created or resumed so far, in order;
        the role is "teacher" (trained first for teacher 'auto'), "student" or "resume"."""
        return read_announcements(self.announce_path)

    def latest_run_id(self) -> str | None:
        """The id of the run the child announced last (the one it trains now), if any yet."""
        runs = self.announced()
        return runs[-1][0].name if runs else None

    @property
    def returncode(self) -> int | None:
        return self.process.poll()

    def output_tail(self, lines: int = 20) -> str:
        try:
            text = self.output_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.rstrip().splitlines()[-lines:])

    def terminate(self) -> None:
        """Ask the child to stop cleanly (it checkpoints and records status 'stopped')."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def stop_at_epoch_end(self) -> None:
        """Ask the child to finish its epoch, checkpoint it, then stop (SIGUSR1)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGUSR1)


# Exit codes of a run process whose run's summary tells how it ended: finished, failed, and
# stopped by SIGINT, SIGTERM or (at the end of an epoch) SIGUSR1.
TOLD_BY_SUMMARY = (0, 1, 128 + signal.SIGINT, 128 + signal.SIGTERM, 128 + signal.SIGUSR1)


def stop_run(summary: Summary | None, at_epoch_end: bool = False) -> str:
    """SIGTERM the process training a run (SIGUSR1 to stop at the end of its epoch); returns
    what happened, for the user."""
    summary = summary or Summary()
    pid, host = summary.pid, summary.host
    if summary.status != "running":
        return f"The run is not running (status {summary.status})."
    if host != socket.gethostname():
        return f"The run trains on {host}; stop it there (kill -TERM {pid})."
    if pid is None or not writer_alive(summary):
        return "The run's process is gone; it can be resumed."
    try:
        os.kill(pid, signal.SIGUSR1 if at_epoch_end else signal.SIGTERM)
    except OSError as exc:
        return f"Could not signal process {pid}: {exc.strerror}."
    if at_epoch_end:
        return f"Stopping at the end of this epoch: process {pid} checkpoints it, then stops."
    return f"Stopping: process {pid} finishes its step and keeps the last checkpoint."
