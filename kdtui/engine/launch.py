"""Starting and resuming runs: validate everything, then make the run folder, then train.

Everything that can fail because of the user's input (config, dataset, teacher
checkpoint, device) is checked before the run folder exists, so a mistake never leaves a
half-made run behind.

Usage::

    run, ended = start_run(cfg, runs_root(), sinks_for=lambda run, role: [RunStoreWriter(run)])
    run, ended = resume_run("20261128-101500-quickstart", runs_root(), sinks_for=...)

``sinks_for(run, role)`` is called as each run folder begins training, with its role:
"teacher" (trained first for teacher 'auto'), "student", or "resume".
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from kdtui.config import RunConfig, load_config, model_independent_keys
from kdtui import events as ev
from kdtui.errors import KdtuiError
from kdtui.losses import LOSSES
from kdtui.store import (RunDir, check_resumable, create_run, resolve_run, starting_summary,
                         training_lock)

SinksFor = Callable[[RunDir, str], list[ev.Sink]]
Notify = Callable[[str], None]

# Parsed ``--set`` overrides, (dotted key, value) pairs (kdtui.overrides.parse_override).
Overrides = tuple[tuple[str, Any], ...]


@dataclass
class Prepared:
    cfg: RunConfig            # resolved: names the concrete teacher
    data: object
    teacher: object | None
    teacher_id: str | None


def prepare(cfg: RunConfig, root: Path, overrides: Overrides = (),
            notify: Notify = print, sinks_for: SinksFor | None = None,
            stop_event: threading.Event | None = None) -> Prepared:
    """Build data and teacher (training the teacher first if 'auto' finds none).

    Returns a new, resolved config (``cfg`` is left as it was): the teacher is named by its
    concrete run id or file, so the run's config.yaml reproduces exactly this run."""
    from kdtui.data import build_data
    from kdtui.engine.teacher import load_teacher
    from kdtui.engine.trainer import resolve_device

    import torch

    from kdtui.models import build_model

    resolve_device(cfg.train.device)
    with torch.device("meta"):  # catches an impossible architecture now, at no cost
        build_model(cfg.student.arch, num_classes=10)
    data = build_data(cfg.data, seed=cfg.train.seed)
    teacher = teacher_id = None
    source = ensure_teacher(cfg, root, overrides, notify, sinks_for, stop_event)
    if source is not None:
        assert cfg.teacher is not None
        teacher = load_teacher(source, data.num_classes)
        teacher_id = source.run_id
        cfg = dataclasses.replace(cfg, teacher=dataclasses.replace(
            cfg.teacher, arch=source.arch,
            checkpoint=source.run_id or source.reference or str(source.checkpoint)))
    return Prepared(cfg, data, teacher, teacher_id)


def distils(cfg: RunConfig) -> bool:
    """Whether ``cfg`` names a teacher and an active loss uses it."""
    return cfg.teacher is not None and any(LOSSES.get(name).needs_teacher for name in cfg.active_losses)


def missing_teacher(cfg: RunConfig, root: Path, overrides: Overrides = ()) -> RunConfig | None:
    """The teacher preset's config that starting ``cfg`` would train first ('auto' and no
    finished run of it in ``root``); None when there is nothing to train. A parallel study
    trains these once, before its points fan out."""
    from kdtui.engine.teacher import find_teacher

    if not distils(cfg) or cfg.teacher.checkpoint != "auto":
        return None
    teacher_cfg = teacher_preset_config(cfg, overrides)
    return teacher_cfg if find_teacher(cfg.teacher, root, teacher_cfg.to_dict()) is None else None


def ensure_teacher(cfg: RunConfig, root: Path, overrides: Overrides = (), notify: Notify = print,
                   sinks_for: SinksFor | None = None, stop_event: threading.Event | None = None):
    """The teacher ``cfg`` distils from (a ``TeacherSource``), training it first when 'auto'
    finds no finished run of its preset; None when no active loss needs a teacher."""
    from kdtui.engine.distributed import current_world, from_main
    from kdtui.engine.teacher import find_teacher

    if not distils(cfg):
        return None
    teacher_cfg = teacher_preset_config(cfg, overrides) if cfg.teacher.checkpoint == "auto" else None
    # Under torchrun rank 0 looks, so every rank takes (or trains) the same teacher.
    world = current_world()
    source = from_main(world, lambda: find_teacher(
        cfg.teacher, root, teacher_cfg.to_dict() if teacher_cfg else None))
    if source is None:
        assert teacher_cfg is not None
        if world.size > 1:  # all ranks train it together; the claim below is per process
            return train_teacher_first(cfg, teacher_cfg, root, overrides, notify, sinks_for, stop_event)
        return train_teacher_once(cfg, teacher_cfg, root, overrides, notify, sinks_for, stop_event)
    if teacher_cfg is not None:
        accuracy = source.best_test_acc
        notify(f"Teacher: run {source.run_id} of preset {teacher_cfg.preset!r}"
               + (f" (best test accuracy {accuracy:.2f}%)." if accuracy is not None else "."))
    return source


def train_teacher_once(cfg: RunConfig, teacher_cfg: RunConfig, root: Path, overrides: Overrides,
                       notify: Notify, sinks_for: SinksFor | None, stop_event: threading.Event | None):
    """Train the 'auto' teacher unless another process sharing the runs folder is training
    it now (a parallel study's points, two sweeps): then wait for it and take its run."""
    from kdtui.engine.teacher import find_teacher
    from kdtui.store import claim

    assert cfg.teacher is not None
    waiting = False
    while True:
        with claim(root, f"teacher {cfg.teacher.preset}") as mine:
            if mine:
                source = find_teacher(cfg.teacher, root, teacher_cfg.to_dict())  # trained meanwhile?
                if source is not None:
                    notify(f"Teacher: run {source.run_id} of preset {teacher_cfg.preset!r}, "
                           "trained by another process.")
                    return source
                return train_teacher_first(cfg, teacher_cfg, root, overrides, notify, sinks_for,
                                           stop_event)
        if stop_event is not None and stop_event.is_set():
            raise KdtuiError("Stopped while waiting for the teacher another process trains.")
        if not waiting:
            waiting = True
            notify(f"The teacher preset {cfg.teacher.preset!r} is being trained by another "
                   "process sharing this runs folder; waiting for it.")
        time.sleep(1.0)


def inherited(overrides: Overrides) -> Overrides:
    """The student's overrides a teacher trained on the way takes too: those that do not change
    the trained network (where the data lives, the device, ...), so it sees the same data and
    runs where the student runs. Never the preset's name or description."""
    keys = model_independent_keys() - {"preset", "description"}
    return tuple((key, value) for key, value in overrides if key in keys)


def teacher_preset_config(cfg: RunConfig, overrides: Overrides) -> RunConfig:
    from kdtui.presets import find_preset

    assert cfg.teacher is not None and cfg.teacher.preset
    teacher_cfg = load_config(find_preset(cfg.teacher.preset), inherited(overrides))
    if teacher_cfg.teacher is not None and teacher_cfg.teacher.checkpoint == "auto":
        raise KdtuiError(f"The teacher preset {cfg.teacher.preset!r} itself needs an 'auto' teacher; "
                         "train that chain step by step, or give the teacher as a run id or file.")
    return teacher_cfg


def train_teacher_first(cfg: RunConfig, teacher_cfg: RunConfig, root: Path, overrides: Overrides,
                        notify: Notify, sinks_for: SinksFor | None, stop_event: threading.Event | None):
    from kdtui.engine.teacher import teacher_from_run

    assert cfg.teacher is not None
    notify(f"No finished run of the teacher preset {cfg.teacher.preset!r} in {root}: "
           f"training the teacher ({teacher_cfg.student.arch}) first.")
    run, ended = start_run(teacher_cfg, root, sinks_for=sinks_for, stop_event=stop_event,
                           notify=notify, overrides=inherited(overrides), role="teacher")
    if not isinstance(ended, ev.RunFinished):
        raise KdtuiError(f"The teacher run {run.id} ended {ended.status}, so the student was not "
                         f"started. Resume the teacher with `kdtui run --resume {run.id}`, then "
                         "start the student again.")
    notify(f"Teacher run {run.id} finished (best test accuracy {ended.best_test_acc:.2f}%).")
    return teacher_from_run(run)


def start_run(cfg: RunConfig, root: Path, *, name: str | None = None,
              sinks_for: SinksFor | None = None, stop_event: threading.Event | None = None,
              notify: Notify = print, overrides: Overrides = (),
              role: str = "student", study: dict | None = None) -> tuple[RunDir, ev.RunEnded]:
    """Train ``cfg`` in a new run folder of ``root``; ``study`` ({"id": ..., "point": ...})
    marks the run as a point of a study, recorded in its summary."""
    from kdtui.engine.distributed import barrier, check_launch, check_same, current_world, from_main
    from kdtui.engine.trainer import Trainer
    from kdtui.store import check_run_name

    world = current_world()  # under torchrun: only rank 0 makes and writes the run folder
    notify = notify if world.is_main else quiet
    check_run_name(name or cfg.preset)
    check_launch(cfg.train.device, cfg.train.batch_size, cfg.train.sync_bn, world)
    prepared = prepare(cfg, root, overrides, notify, sinks_for, stop_event)
    if stop_event is not None and stop_event.is_set():
        raise KdtuiError("Stopped before the run started.")
    check_same(world, prepared.cfg.to_dict(), "configuration (preset or --set)")
    trainer = Trainer(prepared.cfg, prepared.data, teacher=prepared.teacher,
                      teacher_id=prepared.teacher_id, sinks=[], stop_event=stop_event,
                      study=study)
    # The folder appears with its config and a "starting" summary naming its study point, so
    # a kill before training writes anything leaves a run a sweep resumes, not a stray folder.
    run = from_main(world, lambda: create_run(root, name or cfg.preset, config=prepared.cfg.to_dict(),
                                              summary=starting_summary(study)))
    with training_lock(run) if world.is_main else contextlib.nullcontext():
        trainer.sinks = sinks_for(run, role) if sinks_for and world.is_main else []
        ended = trainer.fit(run)
    barrier(world)  # rank 0's last checkpoint and summary are written before anyone reads them
    return run, ended


def quiet(text: str) -> None:
    """The notify of ranks other than 0: rank 0 tells the user."""


def resume_run(ref: str, root: Path, *, sinks_for: SinksFor | None = None,
               stop_event: threading.Event | None = None,
               notify: Notify = print) -> tuple[RunDir, ev.RunEnded]:
    from kdtui.engine.distributed import barrier, check_launch, current_world, from_main
    from kdtui.engine.trainer import Trainer

    world = current_world()  # under torchrun rank 0 checks, locks and writes; any world size
    notify = notify if world.is_main else quiet
    with contextlib.ExitStack() as held:
        def checked() -> tuple[RunDir, dict]:
            run = resolve_run(root, ref)
            held.enter_context(training_lock(run))  # checked under the lock: two resumes at once cannot both pass
            return run, check_resumable(run)

        run, raw = from_main(world, checked)
        cfg = load_config(data=raw)
        check_launch(cfg.train.device, cfg.train.batch_size, cfg.train.sync_bn, world)
        prepared = prepare(cfg, root, notify=notify, sinks_for=sinks_for, stop_event=stop_event)
        sinks = sinks_for(run, "resume") if sinks_for and world.is_main else []
        trainer = Trainer(prepared.cfg, prepared.data, teacher=prepared.teacher,
                          teacher_id=prepared.teacher_id, sinks=sinks, stop_event=stop_event)
        ended = trainer.fit(run, resume=True)
    barrier(world)
    return run, ended
