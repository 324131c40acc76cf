"""The catalogue of runs: listing them, and what may be done to one (delete, resume).

Everything here reads run folders only, through the typed records, and tolerates missing
files, torn last lines and folders that are not runs at all: a run folder with a broken
summary is listed from what its other files still say, and marked as such.

Usage::

    rows = list_run_rows(runs_root())        # the runs table, newest first
    check_resumable(run)                      # KdtuiError saying why not
    delete_run(runs_root(), run)
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kdtui.errors import KdtuiError
from kdtui.store.folders import RUN_ID, RunDir, iter_runs
from kdtui.store.liveness import effective_status, writer_alive
from kdtui.store.records import RunDescription, Summary, describe_config


def started_from_id(run_id: str) -> str:
    """'2026-11-28 10:15' from a run id '20261128-101500-name'."""
    stamp = run_id[:15]
    if len(stamp) == 15 and stamp[8] == "-" and stamp.replace("-", "").isdigit():
        return f"{stamp[0:4]}-{stamp[4:6]}-{stamp[6:8]} {stamp[9:11]}:{stamp[11:13]}"
    return "?"


@dataclass
class RunRow:
    """One line of the runs table."""

    id: str
    path: Path
    status: str
    dataset: str = "?"
    teacher: str = "-"
    student: str = "?"
    method: str = "?"
    best_acc: float | None = None
    final_acc: float | None = None
    teacher_acc: float | None = None
    epochs_done: int = 0
    epochs: int | None = None
    duration_s: float | None = None
    started: str = "?"
    error: str = ""

    @property
    def name(self) -> str:
        parts = self.id.split("-", 2)
        return parts[2] if len(parts) == 3 else self.id

    @property
    def pair(self) -> str:
        return f"{self.teacher} → {self.student}" if self.teacher != "-" else self.student

    @property
    def broken(self) -> bool:
        return self.status == "broken"

    def search_text(self) -> str:
        return " ".join((self.id, self.status, self.dataset, self.teacher, self.student,
                         self.method)).lower()


def read_run_row(run: RunDir) -> RunRow:
    summary = run.summary()
    described: RunDescription | None = summary.description if summary is not None else None
    has_config = True  # a summary carrying the description: no YAML to parse
    if described is None:
        config = run.read_config()  # a run from before that, or not started yet
        has_config = config is not None
        described = describe_config(config) if config is not None else RunDescription()
    row = RunRow(id=run.id, path=run.path, status=effective_status(summary, has_config),
                 started=started_from_id(run.id), dataset=described.dataset,
                 student=described.student, teacher=described.teacher, method=described.method,
                 epochs=described.epochs)
    if summary is not None:
        row.best_acc = summary.best_test_acc
        row.final_acc = summary.final_test_acc
        row.teacher_acc = summary.teacher_test_acc
        row.epochs_done = summary.epochs_done
        row.epochs = summary.epochs or row.epochs
        row.duration_s = summary.wall_time_s
        row.error = summary.error or ""
    return row


def list_run_rows(root: Path) -> list[RunRow]:
    """Every run of the runs folder, newest first; broken folders included as such."""
    return [read_run_row(run) for run in iter_runs(root)]


def check_deletable(root: Path, run: RunDir) -> None:
    """Raise :class:`KdtuiError` unless ``run`` may be deleted: a run folder directly inside
    the runs folder ``root`` whose process, if its summary says "running", is gone."""
    # Only ever delete a run folder of the runs folder, never an arbitrary path.
    if run.path.resolve().parent != root.resolve() or not RUN_ID.fullmatch(run.id):
        raise KdtuiError(f"{run.path} is not a run folder of {root}; kdtui only deletes "
                         "run folders inside the runs folder (see --runs-dir).")
    summary = run.summary() or Summary()
    if effective_status(summary) == "running":  # here and alive, or on another machine
        raise KdtuiError(f"Run {run.id} is still running (process {summary.pid} on "
                         f"{summary.host}); stop it "
                         "first (Ctrl-C, or kill -TERM), then delete it.")


def delete_run(root: Path, run: RunDir) -> None:
    """Delete a run folder, checked by :func:`check_deletable` first."""
    check_deletable(root, run)
    try:
        shutil.rmtree(run.path)
    except OSError as exc:
        raise KdtuiError(f"Could not delete {run.path}: {exc.strerror or exc}.") from None


def check_resumable(run: RunDir) -> dict[str, Any]:
    """The run's raw config if it can be resumed now; otherwise a KdtuiError saying why."""
    raw = run.read_config()
    if raw is None:
        raise KdtuiError(f"Run {run.id} has no readable config.yaml, so it cannot be resumed.")
    summary = run.summary()
    if writer_alive(summary):
        raise KdtuiError(f"Run {run.id} is still running (process {summary.pid}); stop it "
                         "first (Ctrl-C or kill -TERM), then resume.")
    if summary is not None and summary.status == "finished":
        raise KdtuiError(f"Run {run.id} already finished; nothing to resume. To train longer, start "
                         f"a new run from its config: kdtui run {run.config_path} --set train.epochs=N.")
    return raw
