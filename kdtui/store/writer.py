"""The event sink that records a run: metrics.jsonl lines, summary.json and log.txt.

It turns the engine's events (:mod:`kdtui.events`) into the typed records of
:mod:`kdtui.store.records`; it is the only code that writes a run's record files.

Usage::

    start_run(cfg, root, sinks_for=lambda run, role: [RunStoreWriter(run)])
"""

from __future__ import annotations

import os
import socket
import time

from kdtui import events as ev
from kdtui.store.folders import RunDir
from kdtui.store.liveness import process_start_ticks
from kdtui.store.records import EpochRecord, StepRecord, Summary, describe_config


def starting_summary(study: dict | None = None) -> Summary:
    """The summary a run folder is created with (:func:`kdtui.store.create_run`), before
    training writes its own: "starting", by this process (so a kill now reads as "crashed",
    not as a run starting forever), and the study point the run is, if any."""
    return Summary(status="starting", pid=os.getpid(), host=socket.gethostname(),
                   pid_start=process_start_ticks(os.getpid()), study=study)


class RunStoreWriter:
    """Event sink: ``writer(event)`` appends to / replaces the run's record files."""

    def __init__(self, run: RunDir) -> None:
        self.run = run
        self.summary = run.summary() or Summary()
        self._wall_before = 0.0           # training time before this process (a resume)
        self._process_start = time.time()

    def __call__(self, event: ev.Event) -> None:
        handler = getattr(self, f"on_{event.kind}", None)
        if handler is not None:
            handler(event)

    def on_start(self, event: ev.RunStarted) -> None:
        summary = self.summary
        description = describe_config(event.config)
        if event.method:
            description.method = event.method  # the loss registry's label, e.g. amd(g+l)
        summary.status = "running"
        summary.run_id, summary.epochs, summary.epochs_done = event.run_id, event.epochs, event.start_epoch
        summary.device, summary.world_size = event.device, event.world_size
        summary.student_params, summary.teacher_params = event.student_params, event.teacher_params
        summary.teacher_id = event.teacher_id
        summary.started_at = summary.started_at if summary.started_at is not None else event.time
        summary.pid, summary.host = os.getpid(), socket.gethostname()
        summary.pid_start = process_start_ticks(os.getpid())
        summary.describe = description.to_dict()
        if event.study is not None:
            summary.study = event.study
        summary.term_weights = dict(event.term_weights) or summary.term_weights
        summary.error = None
        summary.wall_time_s = summary.wall_time_s or 0.0
        self._wall_before = summary.wall_time_s
        self._process_start = event.time
        # Readers (the dashboard) tell the elapsed time of a live run from these two.
        summary.process_started_at, summary.wall_time_base_s = event.time, self._wall_before
        if event.environment:
            self.run.record_environment(event.environment)
        self.run.write_summary(summary)
        self._log(f"run {event.run_id} started on {event.device}"
                  + (f" ({event.world_size} processes)" if event.world_size > 1 else "")
                  + (f", resuming after epoch {event.start_epoch}" if event.start_epoch else ""))

    def on_teacher(self, event: ev.TeacherEvaluated) -> None:
        self.summary.teacher_test_acc = event.test_acc
        self.run.write_summary(self.summary)
        self._log(f"teacher test accuracy {event.test_acc:.2f}%")

    def on_step(self, event: ev.StepMetrics) -> None:
        self.run.append_record(StepRecord(
            epoch=event.epoch, step=event.step, steps_per_epoch=event.steps_per_epoch,
            global_step=event.global_step, lr=event.lr, loss=dict(event.loss),
            img_per_s=event.img_per_s, time=event.time, system=dict(event.system)))

    def on_epoch(self, event: ev.EpochEnd) -> None:
        self.run.append_record(EpochRecord(
            epoch=event.epoch, epochs=event.epochs, lr=event.lr, loss=dict(event.loss),
            train_acc=event.train_acc, test_acc=event.test_acc, best_test_acc=event.best_test_acc,
            best_epoch=event.best_epoch, img_per_s=event.img_per_s, time_s=event.time_s,
            time=event.time, term_weights=dict(event.term_weights), system=dict(event.system)))
        summary = self.summary
        summary.epochs_done, summary.best_test_acc = event.epoch, event.best_test_acc
        summary.best_epoch, summary.final_test_acc = event.best_epoch, event.test_acc
        summary.wall_time_s = self._wall(event.time)
        self.run.write_summary(summary)
        loss = " ".join(f"{k}={v:.4g}" for k, v in event.loss.items())
        self._log(f"epoch {event.epoch}/{event.epochs} lr={event.lr:.4g} {loss} "
                  f"train_acc={event.train_acc:.2f} test_acc={event.test_acc:.2f} "
                  f"img/s={event.img_per_s:.0f}")

    def on_log(self, event: ev.LogMessage) -> None:
        self._log(event.text, event.level)

    def _end(self, event: ev.RunEnded) -> None:
        summary = self.summary
        summary.status, summary.epochs_done = event.status, event.epochs_done
        summary.best_test_acc, summary.final_test_acc = event.best_test_acc, event.final_test_acc
        summary.wall_time_s, summary.ended_at = self._wall(event.time), event.time
        error = event.error if isinstance(event, ev.RunFailed) else None
        if error is not None:
            summary.error = error
        self.run.write_summary(summary)
        self._log(f"run {event.status}" + (f": {error}" if error is not None else ""))

    on_finished = on_stopped = on_failed = _end

    def _wall(self, now: float) -> float:
        return round(self._wall_before + now - self._process_start, 3)

    def _log(self, text: str, level: str = "info") -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        with self.run.log_path.open("a", encoding="utf-8") as handle:
            handle.write(f"{stamp} {level.upper():5} {text}\n")
