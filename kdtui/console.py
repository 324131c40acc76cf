"""The headless console: an event sink printing a run's progress with rich.

On a terminal it shows a live progress line (ETA, accuracy, img/s, LR, then the loss terms,
wrapped onto a second line rather than cut on a narrow terminal) and one line per finished
epoch; when the output is not a terminal (a log file, CI, nohup)
it prints only the one line per epoch.

Usage::

    console = HeadlessConsole()
    start_run(cfg, root, sinks_for=lambda run, role: [RunStoreWriter(run), console])
"""

from __future__ import annotations

import math
import time
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Column

from kdtui import events as ev


def format_terms(loss: dict[str, float]) -> str:
    return " ".join(f"{name} {value:.4g}" for name, value in loss.items())


def format_duration(seconds: float | None) -> str:
    """'1:02:03' or '2:03'; '-' when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "-"
    seconds = int(max(seconds, 0))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class HeadlessConsole:
    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(highlight=False)
        self.live = self.console.is_terminal
        self.progress: Progress | None = None
        self.task: Any = None
        self.epochs = 0
        self.start_epoch = 0
        self.steps_per_epoch = 1
        self.process_start = time.time()
        self.last_acc = ""
        self.teacher_acc: float | None = None

    def __call__(self, event: ev.Event) -> None:
        handler = getattr(self, f"on_{event.kind}", None)
        if handler is None:
            return
        try:
            handler(event)
        except Exception as exc:  # a display problem must never stop training
            if self.progress is not None:
                self.progress.stop()
                self.progress = None
            self.live = False
            self.console.print(f"[yellow]progress display failed ({type(exc).__name__}: {exc}); "
                               "continuing with plain lines[/]")

    def print(self, text: str) -> None:
        (self.progress.console if self.progress else self.console).print(text)

    def eta(self, epochs_done: int) -> str:
        done = epochs_done - self.start_epoch
        if done <= 0:
            return "?"
        return format_duration((time.time() - self.process_start) / done * (self.epochs - epochs_done))

    def on_start(self, event: ev.RunStarted) -> None:
        self.epochs, self.start_epoch = event.epochs, event.start_epoch
        self.teacher_acc = None
        self.steps_per_epoch = event.steps_per_epoch
        self.process_start = event.time
        teacher = (f", teacher {event.config['teacher']['arch']} ({event.teacher_params:,} params)"
                   if event.teacher_params else "")
        resumed = f", resuming after epoch {event.start_epoch}" if event.start_epoch else ""
        self.console.print(
            f"[bold]{event.run_id}[/] on {event.device}: student {event.config['student']['arch']} "
            f"({event.student_params:,} params){teacher}, {event.epochs} epochs{resumed}\n"
            f"  run folder: {escape(event.run_dir)}")
        if self.live:
            # The bar keeps its width and the info wraps: at 120 columns nothing is cut.
            self.progress = Progress(
                TextColumn("epoch {task.fields[epoch]}/{task.fields[epochs]}"), BarColumn(bar_width=16),
                MofNCompleteColumn(), TimeElapsedColumn(),
                TextColumn("{task.fields[info]}", table_column=Column(no_wrap=False, overflow="fold", ratio=1)),
                console=self.console, transient=True)
            self.progress.start()
            self.task = self.progress.add_task(
                "train", total=self.steps_per_epoch, epoch=event.start_epoch + 1,
                epochs=event.epochs, info="")

    def on_teacher(self, event: ev.TeacherEvaluated) -> None:
        self.teacher_acc = event.test_acc
        self.print(f"  teacher test accuracy {event.test_acc:.2f}%")

    def on_step(self, event: ev.StepMetrics) -> None:
        if self.progress is None:
            return
        info = (f"ETA {self.eta_in_epoch(event)}{self.last_acc} | {event.img_per_s:.0f} img/s | "
                f"lr {event.lr:.3g} | {format_terms(event.loss)}")
        self.progress.update(self.task, completed=event.step, epoch=event.epoch, info=info)

    def eta_in_epoch(self, event: ev.StepMetrics) -> str:
        steps_left = (self.epochs - event.epoch) * self.steps_per_epoch + self.steps_per_epoch - event.step
        steps_done = (event.epoch - 1 - self.start_epoch) * self.steps_per_epoch + event.step
        rate = steps_done / max(event.time - self.process_start, 1e-9)
        return format_duration(steps_left / rate) if rate > 0 else "?"

    def on_epoch(self, event: ev.EpochEnd) -> None:
        self.last_acc = f" | test {event.test_acc:.2f}%"
        width = len(str(event.epochs))
        self.print(
            f"epoch {event.epoch:>{width}}/{event.epochs} lr {event.lr:.4g} | {format_terms(event.loss)} | "
            f"train {event.train_acc:.2f}% test {event.test_acc:.2f}% (best {event.best_test_acc:.2f}% "
            f"@{event.best_epoch}) | {event.img_per_s:.0f} img/s | {event.time_s:.1f}s | "
            f"ETA {self.eta(event.epoch)}")
        if self.progress is not None:
            # reset() replaces the task's fields, so pass all of them again.
            self.progress.reset(self.task, total=self.steps_per_epoch,
                                epoch=min(event.epoch + 1, self.epochs), epochs=self.epochs, info="")

    def on_log(self, event: ev.LogMessage) -> None:
        if event.level != "info" and "\n" not in event.text:
            self.print(f"[yellow]{escape(event.level)}:[/] {escape(event.text)}")

    def _end(self, event: ev.RunEnded, style: str) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
        best = f"{event.best_test_acc:.2f}%" if event.best_test_acc is not None else "-"
        final = f"{event.final_test_acc:.2f}%" if event.final_test_acc is not None else "-"
        error = f": {event.error}" if isinstance(event, ev.RunFailed) else ""
        teacher = f" (teacher {self.teacher_acc:.2f}%)" if self.teacher_acc is not None else ""
        error = escape(error)
        self.console.print(
            f"[{style}]run {event.status}[/] after {event.epochs_done} epoch(s) in "
            f"{format_duration(event.wall_time_s)}: best test accuracy {best}, final {final}"
            f"{teacher}{error}")

    def on_finished(self, event: ev.RunFinished) -> None:
        self._end(event, "bold green")

    def on_stopped(self, event: ev.RunStopped) -> None:
        self._end(event, "bold yellow")

    def on_failed(self, event: ev.RunFailed) -> None:
        self._end(event, "bold red")
