"""Following one run as it grows: new records, log lines and summary changes since the
last poll; the run's history as series; its progress and ETA.

Whoever trains the run (a child of the app, a headless run in another shell, a run that
has ended), it is followed the same way: by reading its folder. Only what was appended is
read on each poll, so a 100,000-line metrics.jsonl is never read twice.

Usage::

    follower = RunFollower(RunDir(path))
    update = follower.poll()                      # RunUpdate: records, log lines, summary
    history.add(update.records)
    progress = run_progress(summary, history, run_id=run.id)
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from kdtui.store.catalogue import reconcile
from kdtui.store.folders import RunDir
from kdtui.store.records import EpochRecord, MetricsRecord, StepRecord, Summary, parse_line
from kdtui.store.system import SystemSample


@dataclass
class RunUpdate:
    """What changed since the last poll."""

    records: list[MetricsRecord] = field(default_factory=list)
    log_lines: list[str] = field(default_factory=list)
    summary: Summary | None = None
    summary_changed: bool = False
    summary_unreadable: bool = False   # summary.json exists but does not parse
    reset: bool = False   # metrics.jsonl was rewritten (a resume): drop what was shown

    @property
    def has_epochs(self) -> bool:
        return any(isinstance(r, EpochRecord) for r in self.records)


class Tail:
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
        self.metrics = Tail(run.metrics_path)
        self.log = Tail(run.log_path)
        self.summary_identity: tuple[int, int, int] | None = None

    def poll(self) -> RunUpdate:
        update = RunUpdate()
        lines, update.reset = self.metrics.read()
        update.records = [r for r in map(parse_line, lines) if r is not None]
        update.log_lines, _ = self.log.read()
        try:
            stat = self.run.summary_path.stat()
            # Every write is an atomic rename (a new inode): coarse mtimes alone could miss one.
            identity: tuple[int, int, int] | None = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        except OSError:
            identity = None
        if identity != self.summary_identity:
            self.summary_identity = identity
            update.summary_changed = True
            update.summary = self.run.summary()
            update.summary_unreadable = identity is not None and update.summary is None
        return update


def highest(xs: list[int], ys: list[float]) -> tuple[int, float] | None:
    """(x, y) of the highest y, the first of equals; None for no points."""
    if not ys:
        return None
    best = max(range(len(ys)), key=ys.__getitem__)
    return xs[best], ys[best]


@dataclass
class RunHistory:
    """Series of one run for the plots, built from its records."""

    step_x: list[int] = field(default_factory=list)
    step_loss: dict[str, list[float]] = field(default_factory=dict)
    step_lr: list[float] = field(default_factory=list)
    step_t: list[float] = field(default_factory=list)
    step_epoch: list[int] = field(default_factory=list)
    last_step: StepRecord | None = None
    epochs: list[EpochRecord] = field(default_factory=list)
    lr_of_epoch: dict[int, float] = field(default_factory=dict)   # from steps, then epoch records

    def clear(self) -> None:
        self.step_x.clear()
        self.step_loss.clear()
        self.step_lr.clear()
        self.step_t.clear()
        self.step_epoch.clear()
        self.epochs.clear()
        self.lr_of_epoch.clear()
        self.last_step = None

    def add(self, records: Iterable[MetricsRecord]) -> None:
        for record in records:
            if isinstance(record, StepRecord):
                if record.global_step is None:
                    continue
                index = len(self.step_x)
                self.step_x.append(record.global_step)
                for name, value in record.loss.items():
                    series = self.step_loss.get(name)
                    if series is None:  # a term first seen now: NaN for the steps before
                        series = self.step_loss[name] = [math.nan] * index
                    series.append(value)
                for series in self.step_loss.values():
                    if len(series) < index + 1:
                        series.append(math.nan)
                self.step_lr.append(record.lr or 0.0)
                self.step_t.append(record.time or 0.0)
                self.step_epoch.append(record.epoch)
                if record.lr is not None:
                    self.lr_of_epoch.setdefault(record.epoch, record.lr)
                self.last_step = record
            elif isinstance(record, EpochRecord):
                self.epochs.append(record)
                if record.lr is not None:
                    self.lr_of_epoch[record.epoch] = record.lr

    @property
    def terms(self) -> list[str]:
        """Loss term names, "total" last."""
        names = list(self.step_loss) or (list(self.epochs[-1].loss) if self.epochs else [])
        return [n for n in names if n != "total"] + (["total"] if "total" in names else [])

    def epoch_series(self, key: str) -> tuple[list[int], list[float]]:
        """(epochs, values) of an epoch field ("test_acc", "lr") or "loss.<term>"."""
        xs, ys = [], []
        for record in self.epochs:
            value = record.value(key)
            if value is not None:
                xs.append(record.epoch)
                ys.append(value)
        return xs, ys

    def epoch_loss(self, term: str) -> tuple[list[int], list[float]]:
        return self.epoch_series(f"loss.{term}")

    def term_weights(self, fallback: dict[str, float] | None = None) -> dict[int, dict[str, float]]:
        """Each epoch's loss-term factors in the total (total = Σ factor × term), by epoch;
        epochs not ended yet (or recorded without them) take ``fallback`` (the run's at start,
        or the last epoch's when it has them)."""
        weights = {record.epoch: record.term_weights for record in self.epochs if record.term_weights}
        latest = weights[max(weights)] if weights else (fallback or {})
        for epoch in set(self.step_epoch) | {record.epoch for record in self.epochs}:
            weights.setdefault(epoch, latest)
        return weights

    def latest_and_best(self) -> list[tuple[str, float | None, float | None]]:
        """(metric, latest, best) rows, the accuracies first (test, then train): losses best =
        lowest epoch mean, accuracies highest."""
        rows: list[tuple[str, float | None, float | None]] = []
        for key, label in (("test_acc", "test acc %"), ("train_acc", "train acc %")):
            _, ys = self.epoch_series(key)
            rows.append((label, ys[-1] if ys else None, max(ys) if ys else None))
        for term in self.terms:
            _, ys = self.epoch_loss(term)
            # Epoch means, comparable with "best"; the last step's value before any epoch ends.
            latest = ys[-1] if ys else None
            if latest is None and self.last_step is not None:
                latest = self.last_step.loss.get(term)
            finite = [y for y in ys if math.isfinite(y)]
            rows.append((f"loss {term}", latest, min(finite) if finite else None))
        return rows

    def best_test(self) -> tuple[int, float] | None:
        """(epoch, accuracy) of the highest test accuracy (the first of equals); None before
        the first epoch ends."""
        return highest(*self.epoch_series("test_acc"))

    def best_epoch(self) -> int | None:
        """The epoch of the highest test accuracy (the first of equals)."""
        best = self.best_test()
        return best[0] if best is not None else None


@dataclass
class RunProgress:
    """Where a run stands, for a header line: status, epoch/step, elapsed, ETA, speed."""

    run_id: str = ""
    status: str = "starting"
    device: str = "?"
    world_size: int = 1       # processes training the run together (torchrun)
    epoch: int = 0            # epoch in progress (or last done when ended)
    epochs: int | None = None
    step: int = 0
    steps_per_epoch: int | None = None
    elapsed_s: float | None = None
    eta_s: float | None = None
    img_per_s: float | None = None
    phase: str = ""           # e.g. "teacher 1/2"
    problem: str = ""         # why the run is "broken" (its record files disagree)
    test_acc: float | None = None       # the last epoch's
    best_acc: float | None = None
    best_epoch: int | None = None
    teacher_acc: float | None = None
    system: SystemSample | None = None  # the machine's use, as last sampled (while running)


def run_progress(summary: Summary | None, history: RunHistory, *, run_id: str = "",
                 phase: str = "", now: float | None = None,
                 summary_unreadable: bool = False) -> RunProgress:
    """The progress of a run from its summary and the records read so far; a summary that
    disagrees with the records (missing, unreadable, more epochs than recorded) makes the
    run "broken", with the epochs and accuracies of the records."""
    now = time.time() if now is None else now
    # The epochs the records hold (None: no record read at all, nothing to hold the summary against).
    recorded = history.epochs[-1].epoch if history.epochs else (0 if history.step_x else None)
    status, problem = reconcile(summary, recorded, summary_exists=summary_unreadable)
    summary = summary or Summary()
    last = history.last_step
    epochs = summary.epochs or (history.epochs[-1].epochs if history.epochs else None)
    done = recorded if problem and recorded is not None else summary.epochs_done
    p = RunProgress(run_id=run_id, status=status, device=summary.device or "?",
                    world_size=summary.world_size or 1, epochs=epochs,
                    phase=phase, problem=problem, teacher_acc=summary.teacher_test_acc)
    xs, ys = history.epoch_series("test_acc")
    best = highest(xs, ys)
    if best is not None:
        p.best_epoch, p.best_acc = best
        p.test_acc = ys[-1]
    next_epoch = min(done + 1, epochs) if isinstance(epochs, int) else done + 1
    if status == "running" and last is not None:
        p.system = SystemSample.from_record(last)
        p.epoch, p.step, p.steps_per_epoch = last.epoch, last.step, last.steps_per_epoch
        if p.epoch <= done:  # the epoch finished; the next one has not logged a step yet
            p.epoch, p.step = next_epoch, 0
        p.img_per_s = last.img_per_s
    elif status == "running":
        p.epoch = next_epoch  # no step logged yet
    else:
        p.epoch = done
    base, started = summary.wall_time_base_s, summary.process_started_at
    if status == "running" and base is not None and started is not None:
        p.elapsed_s = base + now - started
        p.eta_s = eta_s(summary, history, started)
    else:
        p.elapsed_s = summary.wall_time_s
    return p


def eta_s(summary: Summary, history: RunHistory, started: float) -> float | None:
    """Remaining time from this process's pace: epochs done here, or steps so far."""
    epochs, last = summary.epochs, history.last_step
    if epochs is None or last is None:
        return None
    spe = last.steps_per_epoch or 1
    here = [r for r in history.epochs if (r.time or 0) >= started]
    if here:
        per_epoch = sum(r.time_s or 0.0 for r in here) / len(here)
        into = (last.step / spe) if last.epoch > here[-1].epoch else 0.0
        return per_epoch * (epochs - here[-1].epoch - into)
    # No epoch done by this process yet: the step rate since its first logged step.
    steps = [(x, t) for x, t in zip(history.step_x, history.step_t) if t >= started]
    if len(steps) < 2 or steps[-1][1] <= steps[0][1]:
        return None
    rate = (steps[-1][0] - steps[0][0]) / (steps[-1][1] - steps[0][1])
    steps_left = (epochs - last.epoch) * spe + spe - last.step
    return steps_left / rate if rate > 0 else None
