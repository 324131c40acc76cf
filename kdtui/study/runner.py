"""Running a study: which of its runs are done, which to resume, which to start; then
running them one after another in this process.

A run belongs to a point when its summary records the study's id and the point's values
(``Summary.study``) and its config is the point's (up to where and how fast it ran:
:data:`kdtui.study.expand.RUN_ONLY_KEYS`). So re-running a study skips finished points,
resumes stopped, failed and killed ones, and never runs a point twice.

Usage::

    plan = plan_study(spec, expand_study(spec), runs_root())
    outcome = run_study(spec, plan, root, sinks_for=..., stop_event=stop, say=print)
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from kdtui.errors import KdtuiError
from kdtui.overrides import parse_override
from kdtui.store import LIVE, RESUMABLE, RunDir, claim, effective_status, iter_runs
from kdtui.study.expand import StudyRun, comparable, point_key
from kdtui.study.spec import StudySpec

# What a planned run will do.
RUN, RESUME, DONE, BUSY = "would run", "resume", "done", "running"


@dataclass
class Planned:
    run: StudyRun
    action: str                       # RUN, RESUME, DONE or BUSY
    existing: RunDir | None = None    # the run folder to resume, or the finished / live one
    status: str = ""                  # that folder's status
    ignored: list[str] = field(default_factory=list)   # the point's runs with another config


def plan_study(spec: StudySpec, runs: list[StudyRun], root: Path) -> list[Planned]:
    by_point: dict[str, list[tuple[RunDir, str]]] = {}
    for folder in iter_runs(root):                       # newest first
        summary = folder.summary()
        record = summary.study_record if summary is not None else None
        if record is None or record.id != spec.name or record.point is None:
            continue
        by_point.setdefault(point_key(record.point), []).append((folder, effective_status(summary)))
    plans = []
    for run in runs:
        plan = Planned(run, RUN)
        for folder, status in by_point.get(run.key, []):
            if comparable(folder.read_config()) != run.expected:
                plan.ignored.append(folder.id)
                continue
            rank = 3 if status == "finished" else 2 if status in LIVE else 1 if status in RESUMABLE else 0
            current = {DONE: 3, BUSY: 2, RESUME: 1}.get(plan.action, 0)
            if rank > current:   # a finished run wins, then a live one, then the newest resumable
                plan.action = {3: DONE, 2: BUSY, 1: RESUME}[rank]
                plan.existing, plan.status = folder, status
        plans.append(plan)
    return plans


@dataclass
class Outcome:
    done: list[str] = field(default_factory=list)       # run ids finished by this sweep
    failed: list[str] = field(default_factory=list)     # "name: why"
    skipped: list[str] = field(default_factory=list)    # already finished, or training elsewhere
    stopped: bool = False


def format_eta(seconds: float | None) -> str:
    from kdtui.console import format_duration

    return format_duration(seconds)


def run_study(spec: StudySpec, plans: list[Planned], root: Path, *,
              sinks_for: Callable[[RunDir, str], list], stop_event: threading.Event,
              say: Callable[[str], None], notify: Callable[[str], None]) -> Outcome:
    """Run (or resume) every planned run that is not done, in order. A failing run is
    reported and the study goes on; a stop (``stop_event``, Ctrl-C) ends it. The study's
    ETA is the mean time of the runs done so far times the runs left."""
    outcome = Outcome()
    todo = [p for p in plans if p.action in (RUN, RESUME)]
    for plan in plans:
        if plan.action == DONE:
            outcome.skipped.append(plan.existing.id if plan.existing else plan.run.name)
        elif plan.action == BUSY:
            say(f"point {plan.run.number}/{len(plans)} ({plan.run.describe()}, seed {plan.run.seed}): "
                f"run {plan.existing.id if plan.existing else '?'} is training in another process; skipped.")
            outcome.skipped.append(plan.existing.id if plan.existing else plan.run.name)
    durations: list[float] = []
    began: list[float] = []     # when each point's own run began (a teacher trained first is left out)

    def timed_sinks(folder: RunDir, role: str) -> list:
        if role != "teacher":
            began.append(time.time())
        return sinks_for(folder, role)

    for position, plan in enumerate(todo):
        if stop_event.is_set():
            outcome.stopped = True
            break
        run = plan.run
        # Held while this process runs the point: a second sweep of the study (or a parallel
        # child) skips it instead of starting it too.
        with claim(root, point_claim(spec, run)) as mine:
            fresh = plan_study(spec, [run], root)[0]   # another shell may have run it meanwhile
            if not mine or fresh.action in (DONE, BUSY):
                where = (f"run {fresh.existing.id} is {fresh.status} already"
                         if fresh.existing is not None and fresh.action in (DONE, BUSY)
                         else "another sweep is running it now")
                say(f"point {run.number}/{len(plans)}: {where}; skipped.")
                outcome.skipped.append(fresh.existing.id if fresh.existing else run.name)
                continue
            plan = fresh if fresh.action == RESUME else plan
            eta = (f"; study ETA {format_eta(sum(durations) / len(durations) * (len(todo) - position))}"
                   if durations else "")
            verb = (f"resuming {plan.existing.id} ({plan.status})" if plan.action == RESUME and plan.existing
                    else f"run {run.name}")
            say(f"point {run.number}/{len(plans)} ({run.describe()}, seed {run.seed}): {verb} "
                f"[{position + 1} of {len(todo)} to do{eta}]")
            began.clear()
            ended = run_point(spec, plan, root, timed_sinks, stop_event, say, notify, len(plans), outcome)
        if ended == "stopped":
            outcome.stopped = True
            break
        if ended == "done":
            durations.append(time.time() - began[-1])
    return outcome


def point_claim(spec: StudySpec, run: StudyRun) -> str:
    """The name of the lock (:func:`kdtui.store.claim`) held while a process runs ``run``."""
    return f"study {spec.name} point {run.key}"


def run_point(spec: StudySpec, plan: Planned, root: Path, sinks_for: Callable, stop_event: threading.Event,
              say: Callable[[str], None], notify: Callable[[str], None], total: int,
              outcome: Outcome) -> str:
    """Start or resume one planned run; record it in ``outcome``; "done", "failed" or "stopped"."""
    from kdtui import events as ev
    from kdtui.engine.launch import resume_run, start_run

    run = plan.run
    try:
        if plan.action == RESUME and plan.existing is not None:
            folder, ended = resume_run(plan.existing.id, root, sinks_for=sinks_for,
                                       stop_event=stop_event, notify=notify)
        else:
            folder, ended = start_run(run.config, root, name=run.name, sinks_for=sinks_for,
                                      stop_event=stop_event, notify=notify,
                                      overrides=tuple(parse_override(o) for o in run.overrides),
                                      study=run.study_record(spec.name))
    except KeyboardInterrupt:
        return "stopped"
    except KdtuiError as exc:
        if stop_event.is_set():
            return "stopped"
        outcome.failed.append(f"{run.name}: {exc}")
        say(f"point {run.number}/{total} failed: {exc}")
        return "failed"
    except Exception as exc:  # a bug: report it, go on with the other points
        if os.environ.get("KDTUI_DEBUG"):
            raise
        outcome.failed.append(f"{run.name}: {type(exc).__name__}: {exc}")
        say(f"point {run.number}/{total} failed ({type(exc).__name__}: {exc}); this looks "
            "like a bug in kdtui: the run's log.txt has the traceback, if a run folder was made.")
        return "failed"
    if isinstance(ended, ev.RunFinished):
        outcome.done.append(folder.id)
        return "done"
    if isinstance(ended, ev.RunStopped) or stop_event.is_set():
        return "stopped"
    outcome.failed.append(f"{folder.id}: {getattr(ended, 'error', ended.status)}")
    say(f"point {run.number}/{total} failed: run {folder.id} ended {ended.status}.")
    return "failed"
