"""Is a run's writer still alive, and one trainer per run folder.

A summary that says "running" is only believed while the process that wrote it exists on
this host (and is the same process: pids are reused); a "running" run whose process is
gone was killed and is shown as "crashed", which resumes like "stopped".

Usage::

    effective_status(run.summary())      # "running", "crashed", "finished", ...
    with training_lock(run): ...         # raises KdtuiError if another process trains it
"""

from __future__ import annotations

import os
import socket
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from kdtui.errors import KdtuiError
from kdtui.store.records import Summary

if TYPE_CHECKING:
    from kdtui.store.folders import RunDir

RESUMABLE = ("stopped", "failed", "crashed")


def process_start_ticks(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks since boot, Linux /proc), or None if unknown.

    Recorded next to the pid so that a pid reused by another process (after a reboot or a
    container restart keeps the hostname) is not mistaken for the run's writer."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat.rsplit(")", 1)[1].split()[19])  # field 22; the name may hold spaces
    except (OSError, ValueError, IndexError):
        return None


def process_alive(pid: object, host: object, started: object = None) -> bool:
    """Whether the process that wrote a 'running' summary still exists on this machine."""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 1 or host != socket.gethostname():
        return False  # pid 0/1/-1 would mean "my group", init or "everyone" to os.kill
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError, ValueError):
        return False
    except PermissionError:
        pass
    if isinstance(started, int) and process_start_ticks(pid) not in (None, started):
        return False  # the pid now belongs to another process
    return pid != os.getpid()


# Written by a live process: "starting" is the summary a run folder is created with
# (kdtui.store.writer.starting_summary), "running" the one training keeps up to date.
LIVE = ("running", "starting")


def writer_alive(summary: Summary | None) -> bool:
    """Whether a run's summary says "running" (or "starting") and the process that wrote it
    still runs here."""
    return summary is not None and summary.status in LIVE and process_alive(
        summary.pid, summary.host, summary.pid_start)


@contextmanager
def training_lock(run: RunDir) -> Iterator[None]:
    """Held while a process trains ``run``, so two processes never train one run folder
    (two resumes started at once, from the app and a shell). Released when the process
    ends, however it ends."""
    import fcntl

    handle = (run.path / ".lock").open("a")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise KdtuiError(f"Run {run.id} is being trained by another process right now; "
                             "wait for it, or stop it first, then resume.") from None
        yield
    finally:
        handle.close()


def effective_status(summary: Summary | None, has_config: bool = True) -> str:
    """The status to show: "running" only while the writing process still exists.

    No summary yet means "starting" (config.yaml written, training not begun) or, without
    a config either, "broken"."""
    if summary is None:
        return "starting" if has_config else "broken"
    status = summary.status or "unknown"
    if status in LIVE:
        if summary.host not in (None, socket.gethostname()):
            return status  # another machine: cannot check, trust the file
        if not writer_alive(summary):
            return "crashed"  # killed before (or while) training: resumes like "stopped"
    return status


@contextmanager
def claim(root: Path, key: str) -> Iterator[bool]:
    """Held while this process works on ``key`` (a study's point, a teacher being trained), so
    that two processes sharing a runs folder never both do it; yields False, holding nothing,
    when another process has it now. The lock files live in ``<root>/.locks`` (a dot-folder,
    never a run) and are released when the process ends, however it ends."""
    import fcntl
    import hashlib

    folder = root / ".locks"
    folder.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha1(key.encode("utf-8")).hexdigest()[:20]
    handle = (folder / f"{digest}.lock").open("a")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        handle.close()
