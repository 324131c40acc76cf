"""The app's own messages. Messages go up (to a screen, or on to the app); what a widget
shows goes down as attributes and method calls.

* ``RunSwitched``, ``RunUpdated``, ``LaunchEnded``: the dashboard's follow worker (a thread)
  posts them to its screen; ``post_message`` is thread-safe.
* ``OpenRun``, ``ResumeRun``, ``StartStudy``: a screen asks the app to open a run's dashboard,
  to resume a run and watch it, or to start a study and follow it; the app handles them.

Usage::

    self.post_message(OpenRun(RunDir(path)))     # bubbles up to KdtuiApp.on_open_run
"""

from __future__ import annotations

from pathlib import Path

from textual.message import Message

from kdtui.store import RunDir
from kdtui.store.follow import RunUpdate


class RunSwitched(Message, bubble=False):
    """The launch moved on to another run (the student after its teacher)."""

    def __init__(self, run: RunDir, phase: str) -> None:
        super().__init__()
        self.run = run
        self.phase = phase   # e.g. "teacher 1/2", or ""


class RunUpdated(Message, bubble=False):
    """New records, log lines or summary of the run followed."""

    def __init__(self, update: RunUpdate) -> None:
        super().__init__()
        self.update = update


class LaunchEnded(Message, bubble=False):
    """The launched process exited without its run's summary telling why."""

    def __init__(self, code: int, output: str) -> None:
        super().__init__()
        self.code = code
        self.output = output   # the tail of its stdout and stderr


class OpenRun(Message):
    """Open this run's dashboard."""

    def __init__(self, run: RunDir) -> None:
        super().__init__()
        self.run = run


class ResumeRun(Message):
    """Resume this run (an id of the runs folder, or its folder) and watch it."""

    def __init__(self, run: str | RunDir) -> None:
        super().__init__()
        self.run = run


class StartStudy(Message):
    """Start ``kdtui sweep FILE --headless`` and open the studies screen on the study."""

    def __init__(self, path: Path, study_id: str) -> None:
        super().__init__()
        self.path = path
        self.study_id = study_id
