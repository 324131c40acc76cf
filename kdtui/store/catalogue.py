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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kdtui.errors import KdtuiError
from kdtui.store.export import flatten
from kdtui.store.folders import RUN_ID, RunDir, iter_runs
from kdtui.store.liveness import LIVE, effective_status, writer_alive
from kdtui.store.records import (STEP_LINE_PREFIX, EpochRecord, RunDescription, Summary, describe_config,
                                 parse_line)

TAIL_CHUNK = 16384  # bytes read at a time from the end of metrics.jsonl
STEP_PREFIX = STEP_LINE_PREFIX.encode()


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
    tags: tuple[str, ...] = ()
    note: str = ""
    display_name: str | None = None     # labels.json's name: shown instead of the folder's
    # The flattened config.yaml, read on first use (listing parses no YAML): see config().
    _config: dict[str, Any] | None = field(default=None, compare=False, repr=False)

    @property
    def name(self) -> str:
        if self.display_name:
            return self.display_name
        parts = self.id.split("-", 2)
        return parts[2] if len(parts) == 3 else self.id

    @property
    def config_read(self) -> bool:
        return self._config is not None

    def take_config_of(self, earlier: "RunRow") -> None:
        """Keep what an earlier listing of the same run read of its config.yaml (written
        once, when the run is created), so a refresh does not parse it again."""
        if self._config is None and earlier.id == self.id:
            self._config = earlier._config

    def config(self) -> dict[str, Any]:
        """The run's config.yaml flattened ('train.lr': 0.05); {} when missing or unreadable.
        Read once, on first use: call it in a worker for many runs."""
        if self._config is None:
            self._config = flatten(RunDir(self.path).read_config() or {})
        return self._config

    @property
    def pair(self) -> str:
        return f"{self.teacher} → {self.student}" if self.teacher != "-" else self.student

    @property
    def broken(self) -> bool:
        return self.status == "broken"

    def search_text(self) -> str:
        return " ".join((self.id, self.name, self.status, self.dataset, self.teacher, self.student,
                         self.method, *self.tags)).lower()


def last_recorded_epoch(path: Path) -> int | None:
    """The epoch number of the last complete epoch record of a metrics.jsonl (0: none; None:
    no such file).

    Read backwards from the end, a chunk at a time, so listing many long runs reads only
    their tails; a torn last line (no newline yet, or a file cut mid-line) does not count."""
    try:
        with path.open("rb") as handle:
            end = handle.seek(0, 2)
            tail = b""
            position = end
            while position > 0:
                start = max(position - TAIL_CHUNK, 0)
                handle.seek(start)
                tail = handle.read(position - start) + tail
                position = start
                lines = tail.split(b"\n")
                complete = lines[1:-1] if start > 0 else lines[:-1]  # the first may be partial
                for line in reversed(complete):
                    if line.startswith(STEP_PREFIX):
                        continue  # most lines: not parsed
                    record = parse_line(line.decode("utf-8", "replace"))
                    if isinstance(record, EpochRecord):
                        return record.epoch
                tail = lines[0] if start > 0 else b""
    except OSError:
        return None
    return 0


def reconcile(summary: Summary | None, metrics_epochs: int | None, *, has_config: bool = True,
              summary_exists: bool = False) -> tuple[str, str]:
    """(status to show, what is wrong) from summary.json and the epochs metrics.jsonl holds
    (None: there is no metrics.jsonl, so nothing to hold the summary against).

    A folder is "broken" when its record files disagree: summary.json unreadable, missing
    although epochs were recorded, or counting more epochs done than metrics.jsonl holds
    (a file cut or edited: the curves would stop short of what the table says)."""
    status = effective_status(summary, has_config)
    if metrics_epochs is None:
        if summary is None and summary_exists:
            return "broken", "summary.json is unreadable"
        return status, ""
    if summary is None:
        if summary_exists:
            return "broken", "summary.json is unreadable" + (
                f"; metrics.jsonl holds {metrics_epochs} epoch(s)" if metrics_epochs else "")
        if metrics_epochs:
            return "broken", f"summary.json is missing; metrics.jsonl holds {metrics_epochs} epoch(s)"
        return status, ""
    if status != "running" and summary.epochs_done > metrics_epochs:
        return "broken", (f"metrics.jsonl holds {metrics_epochs} of the {summary.epochs_done} epochs "
                          f"summary.json counts ({status} as recorded)")
    return status, ""


def read_run_row(run: RunDir) -> RunRow:
    summary = run.summary()
    described: RunDescription | None = summary.description if summary is not None else None
    has_config = True  # a summary carrying the description: no YAML to parse
    if described is None:
        config = run.read_config()  # a run from before that, or not started yet
        has_config = config is not None
        described = describe_config(config) if config is not None else RunDescription()
    metrics_epochs = last_recorded_epoch(run.metrics_path)
    status, problem = reconcile(summary, metrics_epochs, has_config=has_config,
                                summary_exists=summary is None and run.summary_path.exists())
    row = RunRow(id=run.id, path=run.path, status=status,
                 started=started_from_id(run.id), dataset=described.dataset,
                 student=described.student, teacher=described.teacher, method=described.method,
                 epochs=described.epochs)
    labels = run.labels()
    row.tags, row.note, row.display_name = tuple(labels.tags), labels.note, labels.name
    if summary is not None:
        row.best_acc = summary.best_test_acc
        row.final_acc = summary.final_test_acc
        row.teacher_acc = summary.teacher_test_acc
        row.epochs_done = summary.epochs_done
        row.epochs = summary.epochs or row.epochs
        row.duration_s = summary.wall_time_s
        row.error = summary.error or ""
    if problem and metrics_epochs is not None:  # what the metrics say, which the curves show too
        epochs = [record for record in run.epochs() if record.epoch <= metrics_epochs]
        accuracies = [record.test_acc for record in epochs if record.test_acc is not None]
        row.epochs_done = metrics_epochs
        row.best_acc = max(accuracies) if accuracies else None
        row.final_acc = epochs[-1].test_acc if epochs else None
        row.epochs = row.epochs or (epochs[-1].epochs if epochs else None)
    if problem:
        row.error = problem
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
    if effective_status(summary) in LIVE:  # here and alive, or on another machine
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
