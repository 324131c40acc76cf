"""Typed events the engine emits while a run trains.

Sinks are plain callables ``sink(event)``: the run-store writer, the headless console.
The engine never knows which are listening. This module imports nothing of kdtui, so the
engine (which emits) and the store (which records) both depend on it and not on each
other's internals; the record written for each event is the store's business
(:mod:`kdtui.store.records`).

Usage::

    def print_epochs(event: Event) -> None:
        if isinstance(event, EpochEnd):
            print(event.epoch, event.test_acc)
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar


@dataclass
class Event:
    kind: ClassVar[str] = "event"
    time: float = field(default_factory=time.time, kw_only=True)


@dataclass
class RunStarted(Event):
    kind: ClassVar[str] = "start"
    run_id: str
    run_dir: str
    config: dict[str, Any]
    device: str
    epochs: int
    start_epoch: int          # epochs already done (0 unless resumed)
    steps_per_epoch: int
    student_params: int
    teacher_params: int | None
    teacher_id: str | None
    method: str = ""          # the active loss terms as labelled by the loss registry
    environment: dict[str, Any] = field(default_factory=dict)  # versions, GPUs, command line
    study: dict[str, Any] | None = None  # {"id", "point", ...} when a study (sweep) started it
    term_weights: dict[str, float] = field(default_factory=dict)  # each term's factor in the total
    world_size: int = 1       # processes training the run together (torchrun), 1 otherwise


@dataclass
class TeacherEvaluated(Event):
    kind: ClassVar[str] = "teacher"
    test_acc: float


@dataclass
class StepMetrics(Event):
    kind: ClassVar[str] = "step"
    epoch: int
    step: int                 # 1-based within the epoch
    steps_per_epoch: int
    global_step: int
    lr: float
    loss: dict[str, float]    # every active term by name, plus "total"
    img_per_s: float
    system: dict[str, float] = field(default_factory=dict)  # CPU, RAM, per-GPU use (engine.system)


@dataclass
class EpochEnd(Event):
    kind: ClassVar[str] = "epoch"
    epoch: int                # 1-based
    epochs: int
    lr: float
    loss: dict[str, float]    # epoch means of every active term, plus "total"
    train_acc: float
    test_acc: float
    best_test_acc: float
    best_epoch: int
    img_per_s: float
    time_s: float
    term_weights: dict[str, float] = field(default_factory=dict)  # total = Σ weight × term, this epoch
    system: dict[str, float] = field(default_factory=dict)  # CPU, RAM, per-GPU use at the epoch's end


@dataclass
class LogMessage(Event):
    kind: ClassVar[str] = "log"
    text: str
    level: str = "info"


@dataclass
class RunEnded(Event):
    """Base of the three ways a run ends; ``status`` is what summary.json records."""

    kind: ClassVar[str] = "end"
    status: ClassVar[str] = ""
    epochs_done: int
    best_test_acc: float | None
    final_test_acc: float | None
    wall_time_s: float


@dataclass
class RunFinished(RunEnded):
    kind: ClassVar[str] = "finished"
    status: ClassVar[str] = "finished"


@dataclass
class RunStopped(RunEnded):
    kind: ClassVar[str] = "stopped"
    status: ClassVar[str] = "stopped"


@dataclass
class RunFailed(RunEnded):
    kind: ClassVar[str] = "failed"
    status: ClassVar[str] = "failed"
    error: str = ""


Sink = Callable[[Event], None]


class StopRequest(threading.Event):
    """How a training process is asked to stop (the trainer's ``stop_event``): ``set()`` stops
    after the current step, abandoning the epoch; ``at_epoch_end.set()`` lets the epoch
    finish and be checkpointed first. Either way the run ends "stopped"."""

    def __init__(self) -> None:
        super().__init__()
        self.at_epoch_end = threading.Event()
