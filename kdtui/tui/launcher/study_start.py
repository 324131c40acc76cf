"""Starting a study from the launcher: the preset picker lists the study files too; picking
one validates it (in a thread worker, every point, as the sweep will), asks, and then the
app starts ``kdtui sweep FILE --headless`` in a child process and opens the studies screen.

Usage::

    outline = study_outline(path)                 # in a worker: reads and checks the file
    confirm_study(launcher, path, outline)        # on the event loop: asks, posts StartStudy
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from textual.widget import Widget

from kdtui.errors import KdtuiError
from kdtui.study.spec import is_study_file  # noqa: F401 - the launcher's test for a study file
from kdtui.tui.messages import StartStudy


@dataclass
class Outline:
    name: str = ""
    runs: int = 0
    points: int = 0
    error: str = ""


def study_outline(path: Path) -> Outline:
    """The study's id and size, or why it cannot run (its first bad point, named)."""
    from kdtui.study.expand import expand_study
    from kdtui.study.spec import load_study

    try:
        spec = load_study(path)
        runs = expand_study(spec)
    except KdtuiError as exc:
        return Outline(error=str(exc))
    return Outline(spec.name, len(runs), len({run.index for run in runs}))


def confirm_study(launcher: Widget, path: Path, outline: Outline) -> None:
    from kdtui.tui.screens.confirm import ConfirmScreen

    if outline.error:
        launcher.notify(outline.error, title="Cannot start the study", severity="error", timeout=10)
        return

    def answered(yes: bool | None) -> None:
        if yes:
            launcher.post_message(StartStudy(path, outline.name))

    launcher.app.push_screen(ConfirmScreen(
        f"Start study {outline.name}: {outline.runs} run(s) ({outline.points} point(s) × seeds)?",
        yes="Start", no="Cancel",
        detail=f"kdtui sweep {path} --headless runs them one after another in the background; finished "
               "points are skipped, stopped ones resumed. The studies screen follows it."), answered)
