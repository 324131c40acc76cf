"""The dashboard's header line: run, status, device, progress, elapsed, ETA, img/s.

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
        self.update(text)
