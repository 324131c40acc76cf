"""The app draws at a lower CPU priority than the training runs it starts.

On a machine with few cores, every millisecond the dashboard spends drawing is taken from
the trainer. So the app lowers its own priority (nice +10) — but a child process inherits
the nice value of the thread that starts it, and cannot raise it back without privileges.
On Linux the nice value belongs to each thread: :func:`lower_app_priority` first starts a
*spawner* thread, which keeps the starting priority, then lowers the calling thread's (the
app's event loop; threads it starts later inherit the lower value). Training processes are
started through :func:`spawn`, on the spawner thread, so they run at the priority the app
was started with. Elsewhere (no per-thread nice) nothing is lowered.

Usage::

    lower_app_priority()                        # once, before the app's event loop starts
    process = spawn(lambda: subprocess.Popen(command))   # a trainer at the starting priority
"""

from __future__ import annotations

import os
import queue
import sys
import threading
from concurrent.futures import Future
from typing import Callable, TypeVar

APP_NICENESS = 10   # what the app adds to its nice value (19 is the lowest priority)

T = TypeVar("T")


class _Spawner(threading.Thread):
    """Runs the calls given to it, one at a time, at the priority it was started with."""

    def __init__(self) -> None:
        super().__init__(name="kdtui-spawner", daemon=True)
        self.calls: queue.SimpleQueue[tuple[Callable[[], object], Future]] = queue.SimpleQueue()

    def run(self) -> None:
        while True:
            call, future = self.calls.get()
            try:
                future.set_result(call())
            except BaseException as exc:  # noqa: BLE001 - handed to the caller, raised there
                future.set_exception(exc)


_spawner: _Spawner | None = None


def lower_app_priority(increment: int = APP_NICENESS) -> bool:
    """Start the spawner, then lower the calling thread's priority by ``increment``; False
    (and nothing changed) where nice values are not per thread or cannot be changed."""
    global _spawner
    if not sys.platform.startswith("linux"):
        return False
    if _spawner is None:
        _spawner = _Spawner()
        _spawner.start()
    try:
        # PRIO_PROCESS with who 0 is the calling thread on Linux (see setpriority(2), BUGS).
        os.setpriority(os.PRIO_PROCESS, 0, min(os.getpriority(os.PRIO_PROCESS, 0) + increment, 19))
    except OSError:
        return False
    return True


def spawn(call: Callable[[], T]) -> T:
    """``call()`` on the spawner thread (so a process it starts has the starting priority),
    or here when the priority was never lowered; its exception is raised here."""
    if _spawner is None or threading.current_thread() is _spawner:
        return call()
    future: Future = Future()
    _spawner.calls.put((call, future))
    return future.result()
