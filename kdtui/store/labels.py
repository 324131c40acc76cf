"""Tags, a note and a display name per run, kept in the run's ``labels.json``.

Renaming sets a display name and never moves the folder: the folder name is the run id,
and ids are what other records point at (a student's ``teacher.checkpoint``, its summary's
``teacher_id``, a study's runs, a dashboard following the folder, shell history). A display
name breaks none of them, is safe while the run trains (the trainer never writes
labels.json), and, never being a path, cannot lead outside the runs folder. ``resolve_run``
finds a run by its display name as well as by its folder's name.

Usage::

    set_tags(run, add=["baseline"], remove=["old"])
    set_note(run, "lr too high after epoch 150")
    rename_run(run, "wrn16_amd_best")       # the folder's own name clears the display name
"""

from __future__ import annotations

import re
from typing import Iterable

from kdtui.errors import KdtuiError
from kdtui.store.folders import RunDir, check_run_name
from kdtui.store.records import RunLabels

TAG = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,39}")
NOTE_LIMIT = 2000  # characters: a note, not a lab book


def check_tag(tag: str) -> str:
    if not TAG.fullmatch(tag):
        raise KdtuiError(f"Tag {tag!r} is not allowed: use letters, digits, '.', '_', '+' and '-' "
                         "(up to 40 characters, starting with a letter or digit), e.g. baseline.")
    return tag


def folder_name(run: RunDir) -> str:
    """The name part of the run id ('wrn16' of '20261128-101500-wrn16')."""
    parts = run.id.split("-", 2)
    return parts[2] if len(parts) == 3 else run.id


def set_tags(run: RunDir, add: Iterable[str] = (), remove: Iterable[str] = ()) -> RunLabels:
    """Add and remove tags (in that order; adding one already there changes nothing)."""
    add, remove = [check_tag(t) for t in add], [check_tag(t) for t in remove]
    labels = run.labels()
    tags = [t for t in labels.tags if t not in remove]
    tags += [t for t in dict.fromkeys(add) if t not in tags and t not in remove]
    labels.tags = tags
    run.write_labels(labels)
    return labels


def set_note(run: RunDir, note: str) -> RunLabels:
    """Replace the run's note ('' clears it); control characters other than newlines go."""
    note = "".join(ch for ch in note if ch == "\n" or ch == "\t" or ch.isprintable()).strip()
    if len(note) > NOTE_LIMIT:
        raise KdtuiError(f"The note has {len(note)} characters; keep it under {NOTE_LIMIT} "
                         "(longer write-ups belong in a file next to the runs).")
    labels = run.labels()
    labels.note = note
    run.write_labels(labels)
    return labels


def rename_run(run: RunDir, name: str) -> RunLabels:
    """Give the run a display name (checked like a run name); its folder and id stay."""
    check_run_name(name)
    labels = run.labels()
    labels.name = None if name == folder_name(run) else name
    run.write_labels(labels)
    return labels
