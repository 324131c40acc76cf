"""The analysis screen of a run: what ``kdtui eval`` shows, in the app — the student's and
teacher's numbers, per-class accuracy, the reliability diagram, the t-SNE scatters with
their V-scores and the attention-map grid.

It shows what the run's ``eval/`` holds when that was computed from the run's current
checkpoint, and computes what is missing in a thread worker, with progress, that ``x``
cancels: the numbers on opening (one pass over the test set), the t-SNE (``t``) and the
maps (``m``) on request. Everything computed is cached in ``eval/`` like the command's.

Usage::

    app.push_screen(AnalysisScreen(RunDir(path)))   # `a` in the runs viewer or a dashboard
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.console import Group
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, ProgressBar, Static
from textual.worker import Worker, WorkerState, get_current_worker

from kdtui.store import RunDir


@dataclass
class Shown:
    """What the screen has to show (any part may be missing)."""

    report: dict[str, Any] | None = None
    embeddings: list | None = None
    classes: list[str] | None = None
    maps: Any = None


def read_cached(run: RunDir) -> Shown:
    """The run's fresh cached results (made from its current best checkpoint)."""
    from kdtui.analysis.results import EVAL_JSON, fresh, read_json, read_maps, read_tsne

    shown = Shown()
    report = read_json(run, EVAL_JSON)
    if fresh(report, run):
        shown.report = report
    tsne = read_tsne(run)
    if tsne is not None and fresh(tsne[1], run):
        shown.embeddings, shown.classes = tsne[0], tsne[1].get("classes")
    maps = read_maps(run)
    if maps is not None and fresh(maps[1], run):
        shown.maps = maps[0]
    return shown


class AnalysisScreen(Screen):
    CSS_PATH = "../styles/analysis.tcss"
    BINDINGS = [
        Binding("e", "compute('eval')", "Evaluate"),
        Binding("t", "compute('tsne')", "t-SNE"),
        Binding("m", "compute('maps')", "Maps"),
        Binding("x", "cancel", "Cancel"),
        Binding("escape", "back", "Back"),
        Binding("q", "app.quit", "Quit"),
    ]

    def __init__(self, run: RunDir) -> None:
        super().__init__()
        self.run = run
        self.shown = Shown()
        self.computing: str | None = None    # "eval", "tsne" or "maps" while a worker computes it
        self.worker: Worker | None = None

    def compose(self) -> ComposeResult:
        yield Static(f"analysis of {self.run.id}", id="analysis-title")
        with VerticalScroll(id="analysis-body"):
            yield Static("Reading the run's eval/…", id="analysis-numbers")
            yield Static("", id="analysis-reliability")
            yield Static("", id="analysis-tsne")
            yield Static("", id="analysis-maps")
        yield Static("", id="analysis-status")
        yield ProgressBar(id="analysis-progress", show_eta=False)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#analysis-progress").display = False
        self.load_cached()

    def on_resize(self) -> None:
        self.draw()

    # --- workers ----------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="analysis-read", exit_on_error=False)
    def load_cached(self) -> None:
        shown = read_cached(self.run)
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self.cached_read, shown)

    def cached_read(self, shown: Shown) -> None:
        self.shown = shown
        self.draw()
        if shown.report is None:
            self.action_compute("eval")

    @work(thread=True, exclusive=True, group="analysis", exit_on_error=False)
    def compute(self, what: str) -> None:
        from kdtui.analysis.pipeline import Cancelled, Options, analyse

        worker = get_current_worker()

        def progress(text: str, fraction: float) -> None:
            if not worker.is_cancelled:
                self.app.call_from_thread(self.show_progress, text, fraction)

        try:
            result = analyse(self.run, Options(tsne=what == "tsne", maps=what == "maps"),
                             progress=progress, cancelled=lambda: worker.is_cancelled)
        except Cancelled:
            return  # the screen said so when it cancelled
        if not worker.is_cancelled:
            self.app.call_from_thread(self.finished, result, None)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR:
            if event.worker is self.worker:
                self.finished(None, None)
            self.notify(str(event.worker.error), title="Analysis failed", severity="error", timeout=10)

    # --- showing ----------------------------------------------------------------------

    def show_progress(self, text: str, fraction: float) -> None:
        if self.computing is None or not self.is_attached:
            return
        self.query_one("#analysis-status", Static).update(f"{self.computing}: {text} — x cancels")
        self.query_one("#analysis-progress", ProgressBar).update(total=100, progress=100 * fraction)

    def finished(self, result: Any, message: str | None) -> None:
        self.computing = self.worker = None
        if not self.is_attached:  # left while it computed: the results are in eval/ all the same
            return
        self.query_one("#analysis-progress").display = False
        self.query_one("#analysis-status", Static).update(message or "")
        if message:
            self.notify(message, title="Analysis")
        if result is not None:
            self.shown.report = result.report
            if result.embeddings is not None:
                self.shown.embeddings, self.shown.classes = result.embeddings, result.report.get("classes")
            if result.maps is not None:
                self.shown.maps = result.maps
            timings = ", ".join(f"{key[:-2]} {value:.1f} s" for key, value in result.timings.items())
            self.query_one("#analysis-status", Static).update(f"saved in {self.run.eval_dir} ({timings})")
        self.draw()

    def draw(self) -> None:
        from kdtui.analysis import report as show

        width = max(self.size.width - 4, 40)
        shown = self.shown
        numbers = self.query_one("#analysis-numbers", Static)
        if shown.report is None:
            numbers.update("No evaluation of the current checkpoint yet: e evaluates it.")
        else:
            numbers.update(Group(show.numbers_table(shown.report), show.per_class_table(shown.report)))
            self.query_one("#analysis-reliability", Static).update(
                Text("\n").join(show.reliability_lines(shown.report, width=max(20, min(50, width - 45)))))
        tsne = self.query_one("#analysis-tsne", Static)
        if shown.embeddings:
            tsne.update(Text("\n").join(show.tsne_lines(shown.embeddings, shown.classes or [], width=width)))
        else:
            tsne.update(Text("t-SNE: not computed for this checkpoint — t computes it (a minute or so).",
                             style="dim"))
        maps = self.query_one("#analysis-maps", Static)
        if shown.maps is not None:
            maps.update(Text("\n").join(show.maps_lines(shown.maps, width=width)))
        else:
            maps.update(Text("Maps: not computed for this checkpoint — m computes them.", style="dim"))

    # --- actions ----------------------------------------------------------------------

    def action_compute(self, what: str) -> None:
        if self.computing is not None:
            self.notify(f"Already computing {self.computing}; x cancels it.", severity="warning")
            return
        self.computing = what
        self.query_one("#analysis-progress").display = True
        self.show_progress("starting", 0.0)
        self.worker = self.compute(what)

    def action_cancel(self) -> None:
        if self.computing is None:
            return
        # The thread stops at its next check (between test batches, or between t-SNE runs)
        # without showing anything more; what it had finished is in eval/.
        if self.worker is not None:
            self.worker.cancel()
        self.finished(None, f"{self.computing}: cancelled")

    def action_back(self) -> None:
        if self.computing is not None:
            self.action_cancel()
        if len(self.app.screen_stack) > 1:
            self.app.pop_screen()
