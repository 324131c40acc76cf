"""What the app knows about runs, read from the run store alone (no Textual, no torch).

The app never talks to a training process directly: a run started by the app, by
``kdtui run --headless`` in another shell, or on another machine with a shared runs
folder is followed the same way, by reading its folder as it grows. Everything here
tolerates missing files, torn last lines and folders that are not runs at all.

Usage::

    rows = list_run_rows(runs_root())              # the runs table
    follower = RunFollower(RunDir(path))
    update = follower.poll()                       # new records since the last poll
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from kdtui.errors import KdtuiError
from kdtui.store import RUN_ID, RunDir, describe_config, iter_runs, writer_alive

def effective_status(summary: dict[str, Any] | None, has_config: bool = True) -> str:
    """The status to show: "running" only while the writing process still exists.

    A "running" summary whose process is gone on this host means the process was killed
    (kill -9, power loss): shown as "crashed", which can be resumed like "stopped".
    """
    import socket

    if summary is None:
        return "starting" if has_config else "broken"
    status = str(summary.get("status") or "unknown")
    if status == "running":
        if summary.get("host") not in (None, socket.gethostname()):
            return "running"  # another machine: cannot check, trust the file
        if not writer_alive(summary):
            return "crashed"
    return status


RESUMABLE = ("stopped", "failed", "crashed")


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
    summary = run.read_summary()
    described = (summary or {}).get("describe")
    if isinstance(described, dict):
        has_config = True  # summary.json carries the description: no YAML to parse
    else:
        config = run.read_config()  # a run from before that, or not started yet
        has_config = config is not None
        described = describe_config(config) if config is not None else {}
    row = RunRow(id=run.id, path=run.path, status=effective_status(summary, has_config),
                 started=started_from_id(run.id))
    row.dataset = str(described.get("dataset", "?"))
    row.student = str(described.get("student", "?"))
    row.teacher = str(described.get("teacher", "-"))
    row.method = str(described.get("method", "?"))
    row.epochs = _int(described.get("epochs"))
    if summary is not None:
        row.best_acc = _float(summary.get("best_test_acc"))
        row.final_acc = _float(summary.get("final_test_acc"))
        row.teacher_acc = _float(summary.get("teacher_test_acc"))
        row.epochs_done = _int(summary.get("epochs_done")) or 0
        row.epochs = _int(summary.get("epochs")) or row.epochs
        row.duration_s = _float(summary.get("wall_time_s"))
        row.error = str(summary.get("error") or "")
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
    summary = run.read_summary() or {}
    if effective_status(summary) == "running":  # here and alive, or on another machine
        raise KdtuiError(f"Run {run.id} is still running (process {summary.get('pid')} on "
                         f"{summary.get('host')}); stop it "
                         "first (Ctrl-C, or kill -TERM), then delete it.")


def delete_run(root: Path, run: RunDir) -> None:
    """Delete a run folder, checked by :func:`check_deletable` first."""
    check_deletable(root, run)
    try:
        shutil.rmtree(run.path)
    except OSError as exc:
        raise KdtuiError(f"Could not delete {run.path}: {exc.strerror or exc}.") from None


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


# --- following a run as it grows -------------------------------------------------------

@dataclass
class RunUpdate:
    """What changed since the last poll."""

    records: list[dict[str, Any]] = field(default_factory=list)
    log_lines: list[str] = field(default_factory=list)
    summary: dict[str, Any] | None = None
    reset: bool = False   # metrics.jsonl was rewritten (a resume): drop what was shown


class _Tail:
    """Reads the complete lines appended to a file since the last call."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.partial = b""
        self.identity: tuple[int, int] | None = None

    def read(self) -> tuple[list[str], bool]:
        try:
            stat = self.path.stat()
        except OSError:
            return [], False
        reset = False
        identity = (stat.st_dev, stat.st_ino)
        # A resume rewrites metrics.jsonl atomically (new inode) or it may shrink: start over.
        if self.identity is not None and (identity != self.identity or stat.st_size < self.offset):
            self.offset, self.partial, reset = 0, b"", True
        self.identity = identity
        if stat.st_size == self.offset:
            return [], reset
        try:
            with self.path.open("rb") as handle:
                handle.seek(self.offset)
                chunk = handle.read()
        except OSError:
            return [], reset
        self.offset += len(chunk)
        data = self.partial + chunk
        *lines, self.partial = data.split(b"\n")
        return [line.decode("utf-8", "replace") for line in lines], reset


class RunFollower:
    """Incremental reader of one run folder: metrics records, log lines and the summary."""

    def __init__(self, run: RunDir) -> None:
        self.run = run
        self.metrics = _Tail(run.metrics_path)
        self.log = _Tail(run.log_path)
        self.summary_identity: tuple[int, int, int] | None = None

    def poll(self) -> RunUpdate:
        update = RunUpdate()
        lines, update.reset = self.metrics.read()
        for line in lines:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a torn line of a killed writer
            if isinstance(record, dict):
                update.records.append(record)
        update.log_lines, _ = self.log.read()
        try:
            stat = self.run.summary_path.stat()
            # Every write is an atomic rename (a new inode): coarse mtimes alone could miss one.
            identity = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        except OSError:
            identity = None
        if identity != self.summary_identity:
            self.summary_identity = identity
            update.summary = self.run.read_summary()
        return update


@dataclass
class RunHistory:
    """Series of one run for the plots, built from metrics records."""

    step_x: list[int] = field(default_factory=list)
    step_loss: dict[str, list[float]] = field(default_factory=dict)
    step_lr: list[float] = field(default_factory=list)
    step_t: list[float] = field(default_factory=list)
    last_step: dict[str, Any] | None = None
    epochs: list[dict[str, Any]] = field(default_factory=list)

    def clear(self) -> None:
        self.step_x.clear()
        self.step_loss.clear()
        self.step_lr.clear()
        self.step_t.clear()
        self.epochs.clear()
        self.last_step = None

    def add(self, records: Iterable[dict[str, Any]]) -> None:
        for record in records:
            kind = record.get("event")
            if kind == "step" and isinstance(record.get("loss"), dict):
                x = record.get("global_step")
                if not isinstance(x, int):
                    continue
                index = len(self.step_x)
                self.step_x.append(x)
                for name, value in record["loss"].items():
                    series = self.step_loss.setdefault(name, [math.nan] * index)
                    series.append(_float(value) if _float(value) is not None else math.nan)
                for series in self.step_loss.values():
                    if len(series) < index + 1:
                        series.append(math.nan)
                self.step_lr.append(_float(record.get("lr")) or 0.0)
                self.step_t.append(_float(record.get("time")) or 0.0)
                self.last_step = record
            elif kind == "epoch" and isinstance(record.get("epoch"), int):
                self.epochs.append(record)

    @property
    def terms(self) -> list[str]:
        """Loss term names, "total" last."""
        names = list(self.step_loss) or list((self.epochs[-1].get("loss") or {}) if self.epochs else [])
        return [n for n in names if n != "total"] + (["total"] if "total" in names else [])

    def epoch_series(self, key: str) -> tuple[list[int], list[float]]:
        xs, ys = [], []
        for record in self.epochs:
            value = _float(record.get(key))
            if value is not None:
                xs.append(record["epoch"])
                ys.append(value)
        return xs, ys

    def epoch_loss(self, term: str) -> tuple[list[int], list[float]]:
        xs, ys = [], []
        for record in self.epochs:
            value = _float((record.get("loss") or {}).get(term))
            if value is not None:
                xs.append(record["epoch"])
                ys.append(value)
        return xs, ys

    def latest_and_best(self) -> list[tuple[str, float | None, float | None]]:
        """(metric, latest, best) rows: losses best = lowest epoch mean, accuracies highest."""
        rows: list[tuple[str, float | None, float | None]] = []
        for term in self.terms:
            _, ys = self.epoch_loss(term)
            # Epoch means, comparable with "best"; the last step's value before any epoch ends.
            latest = ys[-1] if ys else None
            if latest is None and self.last_step is not None:
                latest = _float((self.last_step.get("loss") or {}).get(term))
            finite = [y for y in ys if math.isfinite(y)]
            rows.append((f"loss {term}", latest, min(finite) if finite else None))
        for key, label in (("train_acc", "train acc %"), ("test_acc", "test acc %")):
            _, ys = self.epoch_series(key)
            rows.append((label, ys[-1] if ys else None, max(ys) if ys else None))
        return rows


# --- series helpers ----------------------------------------------------------------

def ema(values: Sequence[float], smoothing: float) -> list[float]:
    """Exponential moving average as TensorBoard's slider: 0 = raw, 0.99 = very smooth.

    Bias-corrected, so the first points are not dragged towards zero; NaNs are skipped.
    """
    return IncrementalEma().update(values, smoothing)


class IncrementalEma:
    """:func:`ema` of a growing series, computing only the new points on each call (a long
    run's loss curve is re-smoothed every redraw otherwise)."""

    def __init__(self) -> None:
        self.smoothing: float | None = None
        self.out: list[float] = []
        self.last = 0.0
        self.weight = 0.0

    def update(self, values: Sequence[float], smoothing: float) -> list[float]:
        if smoothing != self.smoothing or len(values) < len(self.out):
            self.__init__()  # new smoothing, or a shorter (reset) series: start over
            self.smoothing = smoothing
        for value in values[len(self.out):]:
            if smoothing <= 0:
                self.out.append(value)
            elif not math.isfinite(value):
                self.out.append(math.nan)
            else:
                self.last = self.last * smoothing + (1 - smoothing) * value
                self.weight = self.weight * smoothing + (1 - smoothing)
                self.out.append(self.last / self.weight)
        return self.out


def downsample(xs: Sequence[float], ys: Sequence[float], points: int) -> tuple[list[float], list[float]]:
    """At most about ``points`` points: the mean of each bucket (keeps the curve's shape,
    costs O(n)), so redrawing a 100k-step run stays as cheap as a short one."""
    n = len(xs)
    if points <= 0 or n <= points:
        return list(xs), list(ys)
    size = math.ceil(n / points)
    out_x, out_y = [], []
    for start in range(0, n, size):
        chunk = [y for y in ys[start:start + size] if math.isfinite(y)]
        if chunk:
            out_x.append(xs[min(start + size, n) - 1])
            out_y.append(sum(chunk) / len(chunk))
    return out_x, out_y


def log10_values(ys: Sequence[float]) -> list[float]:
    """log10 of each value; non-positive values become NaN (not plotted).

    The plot draws these on a linear axis: plotext's own log-y scale crashes on redraw
    inside textual-plotext (plotext issue 209)."""
    return [math.log10(y) if y > 0 and math.isfinite(y) else math.nan for y in ys]


def normalized(ys: Sequence[float]) -> list[float]:
    """Each value over the series' largest magnitude, so terms of any scale share one axis."""
    finite = [abs(y) for y in ys if math.isfinite(y)]
    top = max(finite) if finite else 0.0
    return [y / top if top > 0 and math.isfinite(y) else math.nan for y in ys]


# --- comparing runs ---------------------------------------------------------------

def flatten(mapping: Any, prefix: str = "") -> dict[str, Any]:
    """{'train': {'lr': 0.1}} → {'train.lr': 0.1}; lists stay values."""
    flat: dict[str, Any] = {}
    if isinstance(mapping, dict):
        for key, value in mapping.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            if isinstance(value, dict) and value:
                flat.update(flatten(value, name))
            else:
                flat[name] = value
    return flat


MISSING = "—"


def config_diff(configs: Sequence[dict[str, Any] | None], only_differing: bool = True
                ) -> list[tuple[str, list[str]]]:
    """Rows (key, [value per run]) over the union of keys; a key a run lacks shows "—"."""
    flats = [flatten(config or {}) for config in configs]
    keys: list[str] = []
    for flat in flats:
        keys.extend(k for k in flat if k not in keys)
    rows = []
    for key in keys:
        values = [json.dumps(flat[key]) if key in flat and not isinstance(flat[key], str)
                  else (flat[key] if key in flat else MISSING) for flat in flats]
        if only_differing and len(set(values)) <= 1:
            continue
        rows.append((key, values))
    return rows


CSV_COLUMNS = ["run", "epoch", "epochs", "lr", "train_acc", "test_acc", "best_test_acc",
               "img_per_s", "time_s"]


def export_epochs_csv(runs: Sequence[RunDir], path: Path) -> int:
    """Write every epoch record of ``runs`` to one CSV (a column per loss term); returns
    the number of rows. Written to a temporary file and renamed, so it is never torn."""
    from kdtui.store import atomic_write_text
    import io

    records = [(run.id, record) for run in runs for record in run.epochs()]
    terms: list[str] = []
    for _, record in records:
        terms.extend(t for t in (record.get("loss") or {}) if t not in terms)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS[:4] + [f"loss_{t}" for t in terms] + CSV_COLUMNS[4:])
    for run_id, record in records:
        loss = record.get("loss") or {}
        writer.writerow([run_id, record.get("epoch"), record.get("epochs"), record.get("lr")]
                        + [loss.get(t, "") for t in terms]
                        + [record.get(k) for k in CSV_COLUMNS[4:]])
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, buffer.getvalue())
    return len(records)


def export_path(root: Path) -> Path:
    """A fresh CSV path in ``<runs>/exports/`` (not a run folder, so listings ignore it)."""
    return root / "exports" / f"epochs-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.csv"
