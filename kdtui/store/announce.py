"""The announce file: how a training process tells whoever started it which run folders
it created or resumed, and in which role.

The app starts ``kdtui run … --headless --announce FILE`` as a child process; the child
appends ``<run folder>\\t<role>`` for each run folder as it begins training it — the
teacher first when teacher 'auto' has to train one, then the student — and the app reads
the file to follow them.

Usage::

    announce(path, run, "student")        # in the training process
    read_announcements(path)              # [(Path(...), "teacher"), (Path(...), "student")]
"""

from __future__ import annotations

import os
from pathlib import Path

from kdtui.store.folders import RunDir

ROLES = ("teacher", "student", "resume")


def announce(path: str | os.PathLike[str], run: RunDir, role: str) -> None:
    if role not in ROLES:
        raise ValueError(f"unknown run role {role!r}")
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(f"{run.path.absolute()}\t{role}\n")  # a resumed run may live elsewhere
        handle.flush()


def read_announcements(path: Path) -> list[tuple[Path, str]]:
    """(run folder, role) of each run announced so far, in order; a torn last line skipped."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return []
    runs = []
    for line in text.splitlines(keepends=True):
        if not line.endswith("\n"):
            break  # still being written
        folder, _, role = line.strip().partition("\t")
        if folder:
            runs.append((Path(folder), role or "student"))
    return runs
