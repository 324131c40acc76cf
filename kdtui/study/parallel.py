"""Running a study's points concurrently, each in a process of its own: N at once on CPU
(``kdtui sweep FILE --parallel N``) or one per GPU (``--gpus 0,1,2,3``).

Each point runs as ``python -m kdtui sweep FILE --only K --headless``, the same sweep limited
to its K-th run, so it lands as a normal run of the study, skips a finished point and
resumes a stopped one exactly as a sequential sweep does (and the point's claim keeps any
other sweep off it). 'auto' teachers that points share are trained first, each once, in
children of their own (``--teacher-only``); then the points fan out. A failed point does not
stop the others; a stop (Ctrl-C, SIGTERM) sends SIGTERM to every child, which checkpoints
and records status "stopped", and starts no more. Each child's output goes to
``<runs>/.sweeps/<study>/<run name>.log``.

Usage::

    outcome = run_parallel(spec, plans, root, cpu_slots(2), cli_overrides, stop_event, say)
    outcome = run_parallel(spec, plans, root, gpu_slots("0,1"), cli_overrides, stop_event, say)
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from kdtui.errors import KdtuiError
from kdtui.overrides import parse_override
from kdtui.study.runner import DONE, RESUME, RUN, Outcome, Planned, format_eta, plan_study
from kdtui.study.spec import StudySpec


@dataclass
class Slot:
    """Where one child runs: its label, environment and the overrides that put it there."""

    label: str
    env: dict[str, str] = field(default_factory=dict)
    overrides: list[str] = field(default_factory=list)


def cpu_slots(count: int) -> list[Slot]:
    """``count`` CPU processes, sharing the cores: each gets cores / count threads (unless
    OMP_NUM_THREADS is set), so they do not oversubscribe the machine."""
    if count < 1:
        raise KdtuiError(f"--parallel: got {count}, expected a number of processes ≥ 1.")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    threads = os.environ.get("OMP_NUM_THREADS") or str(max(1, cores // count))
    return [Slot(f"CPU process {i + 1}", {"OMP_NUM_THREADS": threads}) for i in range(count)]


def gpu_slots(text: str) -> list[Slot]:
    """One process per listed GPU id (repeat an id to run two points on it)."""
    ids = [part.strip() for part in text.split(",") if part.strip()]
    if not ids or not all(part.isdigit() for part in ids):
        raise KdtuiError(f"--gpus: got {text!r}, expected GPU ids separated by commas, e.g. --gpus 0,1,2,3.")
    return [Slot(f"GPU {gpu}", {"CUDA_VISIBLE_DEVICES": gpu}, ["train.device=cuda"]) for gpu in ids]


def child_command(spec: StudySpec, number: int, root: Path, overrides: list[str],
                  teacher_only: bool = False) -> list[str]:
    """The command line of the child that runs the study's run ``number`` (or its teacher)."""
    sets = [arg for override in overrides for arg in ("--set", override)]
    return [sys.executable, "-m", "kdtui", "sweep", str(spec.path), "--only", str(number),
            "--headless", "--runs-dir", str(root), *sets, *(["--teacher-only"] if teacher_only else [])]


def shared_teachers(plans: list[Planned], root: Path) -> list[Planned]:
    """One planned run per distinct 'auto' teacher that runs to do need and that has no
    finished run yet: training each of them once, first, is what its child does."""
    from kdtui.engine.launch import missing_teacher
    from kdtui.engine.teacher import comparable

    chosen: dict[str, Planned] = {}
    for plan in plans:
        if plan.action != RUN:      # a run to resume names its teacher's run already
            continue
        overrides = tuple(parse_override(o) for o in plan.run.overrides)
        teacher = missing_teacher(plan.run.config, root, overrides)
        if teacher is not None:
            # Teachers differing only where they run (data.root, train.device) are one teacher.
            chosen.setdefault(json.dumps(comparable(teacher.to_dict()), sort_keys=True, default=str), plan)
    return list(chosen.values())


@dataclass
class Child:
    plan: Planned
    slot: Slot
    process: subprocess.Popen
    log: Path
    began: float


def log_path(root: Path, spec: StudySpec, name: str) -> Path:
    folder = root / ".sweeps" / spec.name   # a dot-folder of the runs folder: never a run
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{name}.log"


def last_failure(log: Path) -> str:
    """The reason a child gave for failing: its last "failed" line, else its last line."""
    try:
        lines = [line.strip() for line in log.read_text(encoding="utf-8", errors="replace").splitlines()
                 if line.strip()]
    except OSError:
        return "no output"
    failed = [line for line in lines if "failed" in line]
    return (failed or lines or ["no output"])[-1]


def run_parallel(spec: StudySpec, plans: list[Planned], root: Path, slots: list[Slot],
                 cli_overrides: list[str], stop_event: threading.Event,
                 say: Callable[[str], None]) -> Outcome:
    """Run the planned runs to do, ``len(slots)`` at a time, each in a child process."""
    outcome = Outcome()
    for plan in plans:
        if plan.action not in (RUN, RESUME):
            outcome.skipped.append(plan.existing.id if plan.existing else plan.run.name)
    todo = [p for p in plans if p.action in (RUN, RESUME)]
    teachers = shared_teachers(todo, root)
    failed_teachers: set[int] = set()
    if teachers:
        say(f"training {len(teachers)} shared teacher(s) first, {min(len(teachers), len(slots))} at a time")
        ended = fan_out(spec, teachers, root, slots, cli_overrides, stop_event, say, len(plans),
                        Outcome(), teacher_only=True, failed_numbers=failed_teachers)
        if ended.stopped:
            outcome.stopped = True
            return outcome
    if failed_teachers:
        from kdtui.engine.launch import missing_teacher

        blocked = [p for p in todo if p.action == RUN and missing_teacher(
            p.run.config, root, tuple(parse_override(o) for o in p.run.overrides)) is not None]
        for plan in blocked:
            outcome.failed.append(f"{plan.run.name}: its teacher could not be trained (see above)")
        todo = [p for p in todo if p not in blocked]
    say(f"{len(todo)} run(s) to do, {min(len(todo), len(slots))} at a time"
        + (f" ({', '.join(s.label for s in slots)})" if todo else ""))
    return fan_out(spec, todo, root, slots, cli_overrides, stop_event, say, len(plans), outcome)


def fan_out(spec: StudySpec, todo: list[Planned], root: Path, slots: list[Slot], cli_overrides: list[str],
            stop_event: threading.Event, say: Callable[[str], None], total: int, outcome: Outcome,
            teacher_only: bool = False, failed_numbers: set[int] | None = None) -> Outcome:
    queue = list(todo)
    free = list(slots)
    running: list[Child] = []
    durations: list[float] = []
    what = "teacher of point" if teacher_only else "point"
    try:
        while queue or running:
            if stop_event.is_set():
                stop_children(running, say)
                outcome.stopped = True
                break
            while queue and free:
                plan, slot = queue.pop(0), free.pop(0)
                run = plan.run
                name = f"{run.name}.teacher" if teacher_only else run.name
                log = log_path(root, spec, name)
                command = child_command(spec, run.number, root, [*cli_overrides, *slot.overrides],
                                        teacher_only)
                with log.open("ab") as out:
                    process = subprocess.Popen(
                        command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                        start_new_session=True,   # the terminal's Ctrl-C reaches this process only,
                        env={**os.environ, **slot.env, "PYTHONUNBUFFERED": "1"})  # which stops them all
                running.append(Child(plan, slot, process, log, time.time()))
                left = len(queue) + len(running)
                eta = (f"; ETA {format_eta(sum(durations) / len(durations) * left / len(slots))}"
                       if durations and not teacher_only else "")
                say(f"{what} {run.number}/{total} ({run.describe()}, seed {run.seed}): started on "
                    f"{slot.label} (process {process.pid}, log {log}) [{left} left{eta}]")
            time.sleep(0.2)
            for child in [c for c in running if c.process.poll() is not None]:
                running.remove(child)
                free.append(child.slot)
                if child_ended(spec, child, root, outcome, say, total, what, teacher_only):
                    durations.append(time.time() - child.began)
                elif failed_numbers is not None and child.process.returncode not in (0, 130, 143):
                    failed_numbers.add(child.plan.run.number)
    except KeyboardInterrupt:   # a second Ctrl-C: do not wait for the children's checkpoints
        stop_children(running, say, wait=False)
        outcome.stopped = True
    return outcome


def child_ended(spec: StudySpec, child: Child, root: Path, outcome: Outcome, say: Callable[[str], None],
                total: int, what: str, teacher_only: bool) -> bool:
    """Record how a child ended in ``outcome``; True when it finished its run."""
    run, code = child.plan.run, child.process.returncode
    if code == 0:
        if teacher_only:
            say(f"{what} {run.number}/{total}: teacher ready")
            return True
        fresh = plan_study(spec, [run], root)[0]
        if fresh.action == DONE and fresh.existing is not None:
            outcome.done.append(fresh.existing.id)
            say(f"{what} {run.number}/{total}: finished, run {fresh.existing.id}")
            return True
        outcome.skipped.append(fresh.existing.id if fresh.existing else run.name)
        say(f"{what} {run.number}/{total}: left to another process ({fresh.action})")
        return False
    if code in (130, 143, -signal.SIGTERM, -signal.SIGINT):
        outcome.stopped = True
        say(f"{what} {run.number}/{total}: stopped")
        return False
    reason = last_failure(child.log)
    outcome.failed.append(f"{run.name}: {reason}")
    say(f"{what} {run.number}/{total} failed (exit {code}): {reason} — log {child.log}")
    return False


def stop_children(running: list[Child], say: Callable[[str], None], wait: bool = True) -> None:
    """SIGTERM to every running child (each checkpoints and records "stopped"), then wait."""
    for child in running:
        if child.process.poll() is None:
            child.process.send_signal(signal.SIGTERM)
    if running:
        say(f"stopping {len(running)} running point(s): each checkpoints and records status stopped")
    if wait:
        for child in running:
            try:
                child.process.wait(timeout=300)
            except subprocess.TimeoutExpired:
                child.process.kill()
