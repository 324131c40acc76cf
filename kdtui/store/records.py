"""The run record, typed: what ``summary.json`` and the lines of ``metrics.jsonl`` hold.

This module is the one place that knows the keys of those files. The writer
(:mod:`kdtui.store.writer`) builds these records from engine events and writes their
``to_dict()``; every reader gets them back through ``from_dict()``, which tolerates old and
partial files: a missing or ill-typed field becomes its default, unknown keys are kept (and
written back) untouched, so a run recorded by an older kdtui still lists and resumes.

Usage::

    summary = Summary.from_dict(json.loads(text))     # never raises on a dict
    summary.best_test_acc, summary.status
    record = parse_record(json.loads(line))           # EpochRecord, StepRecord or None
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, TypeVar

R = TypeVar("R", bound="Record")

# The writer puts "event" first on every metrics line, so a reader can skip the (many) step
# lines of a long run without parsing them: see :func:`is_step_line`.
STEP_LINE_PREFIX = '{"event": "step"'


_NUMBER_TYPES = (int, float)  # exact types: a bool (an int subclass) is not a number here


def _number(value: Any) -> float | None:
    return float(value) if type(value) in _NUMBER_TYPES else None


def _whole(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _losses(value: Any) -> dict[str, float]:
    """Loss terms by name; a value that is not a number is kept as NaN (it was written as one)."""
    if not isinstance(value, dict):
        return {}
    return {str(k): float(v) if type(v) in _NUMBER_TYPES else math.nan for k, v in value.items()}


def _texts(value: Any) -> list[str]:
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


def _mapping(value: Any) -> dict[str, Any] | None:
    return value if isinstance(value, dict) else None


# How each annotated type of a record field is read back from JSON.
_READERS: dict[str, Callable[[Any], Any]] = {
    "float | None": _number, "float": _number, "int | None": _whole, "int": _whole,
    "str | None": _text, "str": _text, "dict[str, float]": _losses, "list[str]": _texts,
    "dict[str, Any] | None": _mapping,
    "dict[str, float] | None": lambda value: _losses(value) if isinstance(value, dict) else None,
}


@functools.cache
def _field_readers(cls: type) -> dict[str, tuple[Callable[[Any], Any], bool]]:
    """Each field's reader and whether None is a value it may take, worked out once per
    class (a long run's metrics.jsonl is 100,000 lines of the same few classes)."""
    return {item.name: (_READERS[str(item.type)], "None" in str(item.type))
            for item in dataclasses.fields(cls) if item.name != "extra"}


class Record:
    """Tolerant ``from_dict``/``to_dict`` for the record dataclasses below."""

    @classmethod
    def from_dict(cls: type[R], data: Any) -> R:
        data = data if isinstance(data, dict) else {}
        values: dict[str, Any] = {}
        readers = _field_readers(cls)
        for name, (read, none_allowed) in readers.items():
            if name in data:
                value = read(data[name])
                if value is not None or none_allowed:
                    values[name] = value
        record = cls(**values)
        record.extra = {k: v for k, v in data.items() if k not in readers and k != "event"}  # type: ignore[attr-defined]
        return record

    def to_dict(self) -> dict[str, Any]:
        out = {item.name: getattr(self, item.name)
               for item in dataclasses.fields(self) if item.name != "extra"}  # type: ignore[arg-type]
        return {**self.extra, **out}  # type: ignore[attr-defined]


@dataclass
class RunDescription(Record):
    """What a runs table shows of a config; stored in the summary so listing parses no YAML."""

    dataset: str = "?"
    student: str = "?"
    teacher: str = "-"         # "-": trained without a teacher
    method: str = "?"          # e.g. "ce+kd+amd(g+l)"
    epochs: int | None = None
    extra: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class Summary(Record):
    """``summary.json``: the state of a run, replaced atomically as it changes."""

    status: str = "unknown"    # running, finished, stopped, failed (as written)
    run_id: str | None = None
    epochs: int | None = None
    epochs_done: int = 0
    device: str | None = None
    world_size: int | None = None  # processes that trained it together (torchrun); latest start
    student_params: int | None = None
    teacher_params: int | None = None
    teacher_id: str | None = None
    best_test_acc: float | None = None
    best_epoch: int | None = None
    final_test_acc: float | None = None
    teacher_test_acc: float | None = None
    wall_time_s: float | None = None
    started_at: float | None = None
    ended_at: float | None = None
    # The writing process: who to signal, and whether it still lives (pid reuse included).
    pid: int | None = None
    host: str | None = None
    pid_start: int | None = None
    # Elapsed time of a live run = wall_time_base_s + now - process_started_at.
    process_started_at: float | None = None
    wall_time_base_s: float | None = None
    error: str | None = None
    describe: dict[str, Any] | None = None
    study: dict[str, Any] | None = None     # {"id": study id, "point": ...} for a study's runs
    term_weights: dict[str, float] | None = None  # each loss term's factor in the total, at start
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def description(self) -> RunDescription | None:
        return RunDescription.from_dict(self.describe) if self.describe is not None else None

    @property
    def study_record(self) -> StudyRecord | None:
        """The typed view of :attr:`study`; None for a run no study started."""
        return StudyRecord.from_dict(self.study) if self.study is not None else None


@dataclass
class StudyRecord(Record):
    """``summary.json``'s ``study``: which study started the run, and as which point."""

    id: str | None = None
    point: dict[str, Any] | None = None     # the point's values ("train.seed" included)
    index: int | None = None                # the point's number in its study (1-based)
    reported: dict[str, Any] | None = None  # the paper's number for the point, if the study gave one
    extra: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class RunLabels(Record):
    """``labels.json``: what the user says about a run (tags, a note, a display name).

    A file of its own, so that the trainer, which rewrites summary.json while it runs, never
    overwrites it; written only by :mod:`kdtui.store.labels`."""

    tags: list[str] = field(default_factory=list)
    note: str = ""
    name: str | None = None    # the name shown instead of the folder's; the id never changes
    extra: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class StepRecord(Record):
    """A ``{"event": "step"}`` line: loss means over the last ``train.log_every`` steps."""

    kind: ClassVar[str] = "step"
    epoch: int = 0
    step: int = 0              # 1-based within the epoch
    steps_per_epoch: int | None = None
    global_step: int | None = None
    lr: float | None = None
    loss: dict[str, float] = field(default_factory=dict)   # every active term, plus "total"
    img_per_s: float | None = None
    time: float | None = None
    system: dict[str, float] = field(default_factory=dict)  # CPU/RAM/GPU use (kdtui.store.system)
    extra: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class EpochRecord(Record):
    """An ``{"event": "epoch"}`` line: one finished epoch, written before its checkpoint."""

    kind: ClassVar[str] = "epoch"
    epoch: int = 0             # 1-based
    epochs: int | None = None
    lr: float | None = None
    loss: dict[str, float] = field(default_factory=dict)   # epoch means, plus "total"
    train_acc: float | None = None
    test_acc: float | None = None
    best_test_acc: float | None = None
    best_epoch: int | None = None
    img_per_s: float | None = None
    time_s: float | None = None
    time: float | None = None
    term_weights: dict[str, float] = field(default_factory=dict)  # total = Σ weight × term
    system: dict[str, float] = field(default_factory=dict)  # CPU/RAM/GPU use (kdtui.store.system)
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    def value(self, key: str) -> float | None:
        """A numeric field by name (``"test_acc"``), or ``"loss.<term>"``; None if absent."""
        if key.startswith("loss."):
            return self.loss.get(key[5:])
        value = getattr(self, key, None) if key in _EPOCH_NUMBERS else None
        return float(value) if value is not None else None


_EPOCH_NUMBERS = {item.name for item in dataclasses.fields(EpochRecord)
                  if item.name not in ("loss", "extra", "term_weights", "system")}

MetricsRecord = typing.Union[StepRecord, EpochRecord]
_KINDS: dict[str, type[Record]] = {"step": StepRecord, "epoch": EpochRecord}


def record_line(record: MetricsRecord) -> str:
    """One metrics.jsonl line, ``"event"`` first (see :data:`STEP_LINE_PREFIX`)."""
    return json.dumps({"event": record.kind, **record.to_dict()}) + "\n"


def is_step_line(line: str) -> bool:
    return line.startswith(STEP_LINE_PREFIX)


def parse_record(data: Any) -> MetricsRecord | None:
    """The typed record of a parsed metrics line; None for other or malformed lines (an
    epoch or step record needs a whole-number ``epoch``)."""
    if not isinstance(data, dict):
        return None
    kind = _KINDS.get(data.get("event"))  # type: ignore[arg-type]
    if kind is None or _whole(data.get("epoch")) is None:
        return None
    return kind.from_dict(data)  # type: ignore[return-value]


def parse_line(line: str) -> MetricsRecord | None:
    try:
        return parse_record(json.loads(line))
    except json.JSONDecodeError:
        return None  # a torn line of a killed writer


# --- what a config looks like in a runs table ----------------------------------------

def method_label(loss: Any, label_of: Callable[[str, Any], str] | None = None) -> str:
    """'ce+kd+amd(g+l)' from a config's loss section: the active terms, in order.

    ``label_of(name, options)`` names a term (the loss registry's labels, which say e.g.
    whether AMD is global or g+l); without it, the bare loss names."""
    if not isinstance(loss, dict):
        return "?"
    parts = []
    for name, opts in loss.items():
        weight = opts.get("weight", 1.0) if isinstance(opts, dict) else opts
        if isinstance(weight, (int, float)) and weight <= 0:
            continue
        parts.append(str(label_of(name, opts) if label_of else name))
    return "+".join(parts) or "-"


def describe_config(config: dict[str, Any], label_of: Callable[[str, Any], str] | None = None
                    ) -> RunDescription:
    """Dataset, student, teacher ("-" if none), method and epochs of a config (a raw mapping:
    a hand-edited config.yaml may hold anything)."""

    def section(name: str) -> dict[str, Any]:
        value = config.get(name)
        return value if isinstance(value, dict) else {}

    teacher = config.get("teacher")
    epochs = section("train").get("epochs")
    return RunDescription(
        dataset=str(section("data").get("dataset", "?")),
        student=str(section("student").get("arch", "?")),
        teacher=str(teacher.get("arch") or "?") if isinstance(teacher, dict) else "-",
        method=method_label(config.get("loss"), label_of),
        epochs=_whole(epochs))


# --- env.json ----------------------------------------------------------------------------

def environment_fields(record: Any) -> dict[str, str]:
    """The environment a run started in (env.json's "started"), as short strings keyed
    ``env.kdtui``, ``env.torch``, ...: what the runs viewer shows and diffs. Tolerant of
    old, partial or hand-edited files (missing pieces are left out)."""
    started = record.get("started") if isinstance(record, dict) else None
    if not isinstance(started, dict):
        return {}
    fields: dict[str, str] = {}
    git = started.get("git")
    version = _text(started.get("kdtui"))
    if version is not None:
        commit = (f" ({str(git.get('commit', ''))[:10]}{', dirty' if git.get('dirty') else ''})"
                  if isinstance(git, dict) else "")
        fields["env.kdtui"] = version + commit
    for key in ("python", "torch", "torchvision", "cuda", "cudnn", "cpu_count", "host"):
        value = started.get(key)
        if value is not None and not isinstance(value, (dict, list)):
            fields[f"env.{key}"] = str(value)
    gpus = started.get("gpus")
    if isinstance(gpus, list) and gpus:
        fields["env.gpus"] = ", ".join(map(str, gpus))
    command = started.get("command")
    if isinstance(command, list):
        fields["env.command"] = " ".join(map(str, command))
    return fields
