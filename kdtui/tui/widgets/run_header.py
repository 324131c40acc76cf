"""The dashboard's header: the test accuracy (latest, best @epoch, teacher) first, then the
run, status, device (× processes under torchrun), progress, elapsed, ETA and img/s; why a
broken run is broken; while it trains, the machine's CPU and RAM and each GPU's utilisation
and memory.

Usage::

    header = RunHeader()
    header.update_from(RunProgress(run_id=..., status="running", ...))
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from kdtui.console import format_duration
from kdtui.store.follow import RunProgress
from kdtui.store.system import SystemSample

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
        if p.world_size > 1:
            text.append(f" ×{p.world_size} processes")
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
        if p.system is not None and not p.system.empty:
            text.append("  ")
            text.append_text(system_text(p.system))
        self.update(text)


def system_text(sample: SystemSample) -> Text:
    """'CPU 37%  RAM 12.3/62.8 GB (run 1.1)  GPU0 85% 10.1/80.0 GB' (what is known of it)."""
    parts = []
    if sample.cpu_percent is not None:
        parts.append(f"CPU {sample.cpu_percent:.0f}%")
    if sample.ram_used_gb is not None:
        total = f"/{sample.ram_total_gb:.1f}" if sample.ram_total_gb else ""
        run = f" (run {sample.process_rss_gb:.1f})" if sample.process_rss_gb is not None else ""
        parts.append(f"RAM {sample.ram_used_gb:.1f}{total} GB{run}")
    for gpu in sample.gpus:
        util = f" {gpu.util_percent:.0f}%" if gpu.util_percent is not None else ""
        memory = ""
        if gpu.mem_used_gb is not None:
            total = f"/{gpu.mem_total_gb:.1f}" if gpu.mem_total_gb else ""
            memory = f" {gpu.mem_used_gb:.1f}{total} GB"
        parts.append(f"GPU{gpu.index}{util}{memory}")
    return Text("  ".join(parts), style="cyan")


def percent(value: float | None) -> str:
    return f"{value:.2f}%" if value is not None else "-"
