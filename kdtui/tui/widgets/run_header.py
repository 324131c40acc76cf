"""The dashboard's header: the test accuracy (latest, best @epoch, teacher) first, then the
run, status, device, progress, elapsed, ETA and img/s; why a broken run is broken.

Usage::

    header = RunHeader()
    header.update_from(RunProgress(run_id=..., status="running", ...))
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from kdtui.console import format_duration
from kdtui.store.follow import RunProgress

STATUS_STYLES = {
    "running": "bold green", "finished": "bold cyan", "stopped": "bold yellow",
    "failed": "bold red", "crashed": "bold red", "starting": "bold magenta", "broken": "bold red",
}


def bar(fraction: float, width: int) -> str:
    filled = round(max(0.0, min(1.0, fraction)) * width)
    return "█" * filled + "░" * (width - filled)


class RunHeader(Static):
    last_progress: RunProgress | None = None

    def update_from(self, p: RunProgress) -> None:
        if p == self.last_progress:
            return  # an ended run: nothing to redraw each second
        self.last_progress = p
        text = Text()
        text.append("test ")
        text.append(percent(p.test_acc), style="bold")
        if p.best_acc is not None:
            text.append(f" best {percent(p.best_acc)} @{p.best_epoch}")
        if p.teacher_acc is not None:
            text.append(f" teacher {percent(p.teacher_acc)}")
        text.append("  ")
        text.append(p.run_id or "(starting…)", style="bold")
        text.append("  ")
        text.append(f" {p.status} ", style=f"reverse {STATUS_STYLES.get(p.status, 'bold')}")
        if p.phase:
            text.append(f"  {p.phase}", style="italic")
        text.append(f"  {p.device}")
        epochs = p.epochs or 0
        text.append(f"  epoch {p.epoch}/{epochs or '?'}")
        if p.steps_per_epoch:
            text.append(f"  step {p.step}/{p.steps_per_epoch} ")
            text.append(bar(p.step / p.steps_per_epoch, 12), style="green")
        text.append(f"  elapsed {format_duration(p.elapsed_s)}")
        if p.status == "running":
            text.append(f"  ETA {format_duration(p.eta_s)}")
        if p.img_per_s:
            text.append(f"  {p.img_per_s:,.0f} img/s")
        if p.problem:
            text.append(f"  {p.problem}", style="red")
        self.update(text)


def percent(value: float | None) -> str:
    return f"{value:.2f}%" if value is not None else "-"
