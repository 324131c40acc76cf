"""The studies screen: the studies of the runs folder, and for the highlighted one its results
table (n, mean ± sample std, teacher, the paper's number and the difference: what ``kdtui
table --study ID`` prints) and its accuracy against the swept value with error bars, one
line per method/teacher.

While it is shown the runs folder is polled in a thread worker (a ``stat`` per run; a run
is read again only when its summary changed or it is live, :class:`~kdtui.study.overview.
StudyReader`), so a running study's table and plot fill in as its points finish.

Usage::

    app.push_screen(StudiesScreen())                 # s on home or in the runs viewer
    app.push_screen(StudiesScreen(study="gamma"))    # after starting a study from the launcher
"""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static
from textual.worker import Worker, WorkerState, get_current_worker

from kdtui.store import LIVE
from kdtui.study.overview import StudyReader
from kdtui.study.table import METRICS, RunResult, Table, build_table
from kdtui.tui.process import Launch
from kdtui.tui.screens import first_screen_check
from kdtui.tui.widgets.study_view import StudyPlot, results_table

POLLS_PER_REFRESH = 4   # the runs folder is read every 4 × the app's poll interval (2 s by default)


def counts(results: list[RunResult]) -> tuple[int, int, int]:
    """(finished, live, other) runs of a study."""
    finished = sum(r.status == "finished" for r in results)
    live = sum(r.status in LIVE for r in results)
    return finished, live, len(results) - finished - live


class StudiesScreen(Screen):
    AUTO_FOCUS = "#studies-list"
    BINDINGS = [
        Binding("m", "toggle_metric", "Best/final"),
        Binding("r,f5", "refresh", "Refresh"),
        Binding("escape", "escape", "Back", show=False),
        Binding("q", "back", "Back"),      # back one level…
        Binding("q", "app.quit", "Quit"),  # …or, on the first screen, quit (asking first)
    ]

    def __init__(self, study: str | None = None, launch: Launch | None = None) -> None:
        super().__init__()
        self.chosen = study                  # the study shown (highlighted in the list)
        self.launch = launch                 # the sweep this app started for it, if any
        self.metric = "best"
        self.studies: dict[str, list[RunResult]] = {}
        self.reader: StudyReader | None = None
        self.table: Table | None = None       # the chosen study's results, as shown

    def compose(self) -> ComposeResult:
        with Horizontal(id="studies-body"):
            with Vertical(id="studies-side", classes="panel") as side:
                side.border_title = "Studies"
                yield DataTable(id="studies-list", cursor_type="row", zebra_stripes=True)
                yield Static("Reading the runs folder…", id="studies-note", classes="muted")
            with Vertical(id="study-detail"):
                with VerticalScroll(id="study-table-box", classes="panel") as box:
                    box.border_title = "Results"
                    yield Static(id="study-table")
                yield StudyPlot(id="study-plot", classes="panel")
        yield Footer()

    def on_mount(self) -> None:
        self.reader = StudyReader(self.app.runs_root)
        table = self.query_one("#studies-list", DataTable)
        table.add_columns("study", "done", "live", "other")
        self.set_interval(self.app.poll_interval * POLLS_PER_REFRESH, self.load_studies)

    def on_screen_resume(self) -> None:
        self.load_studies()

    # --- reading the runs folder (a thread worker) ---------------------------------------

    @work(thread=True, exclusive=True, group="studies-read", exit_on_error=False)
    def load_studies(self) -> None:
        assert self.reader is not None
        studies = self.reader.read()
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self.show_studies, studies)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR and event.worker.group == "studies-read":
            self.notify(str(event.worker.error), title="Could not read the runs folder", severity="error",
                        timeout=10)

    # --- showing them ---------------------------------------------------------------------

    def show_studies(self, studies: dict[str, list[RunResult]]) -> None:
        self.studies = studies
        table = self.query_one("#studies-list", DataTable)
        note = self.query_one("#studies-note", Static)
        rows = [(name, counts(results)) for name, results in studies.items()]
        rebuilt = [str(key.value) for key in table.rows] != [name for name, _ in rows]
        if rebuilt:   # a study appeared (or went): else only the counts change
            table.clear()
            for name, _ in rows:
                table.add_row(name, "", "", "", key=name)
        column_keys = list(table.columns)
        for name, numbers in rows:
            for column, number in zip(column_keys[1:], numbers):
                table.update_cell(name, column, Text(str(number), justify="right"))
        table.display = bool(rows)
        note.display = not rows
        note.update(Text(f"No study in {self.app.runs_root}: start one with `kdtui sweep FILE`, or pick a "
                         "study file in the launcher's preset picker (ctrl+o)."))
        if self.chosen not in studies and rows and self.launch is None:
            self.chosen = rows[0][0]   # (a study being started shows once its first run exists)
        if rebuilt and self.chosen in studies:
            table.move_cursor(row=table.get_row_index(self.chosen))
        self.show_study()
        self.check_launch()

    def check_launch(self) -> None:
        """Say once how the sweep this app started ended (its output's tail when it failed)."""
        if self.launch is None or self.launch.returncode is None:
            return
        launch, self.launch = self.launch, None
        if launch.returncode == 0:
            self.notify(f"Study {self.chosen}: the sweep is done.", title="Study")
        else:
            self.notify(f"exit code {launch.returncode}:\n{launch.output_tail(4)}", title="The sweep ended",
                        severity="error", timeout=15)

    @on(DataTable.RowHighlighted, "#studies-list")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        name = str(event.row_key.value)
        if name != self.chosen:
            self.chosen = name
            self.show_study()

    def show_study(self) -> None:
        results = self.studies.get(self.chosen or "")
        box = self.query_one("#study-table-box")
        shown = self.query_one("#study-table", Static)
        plot = self.query_one("#study-plot", StudyPlot)
        self.table = None
        if not results:
            box.border_title = "Results"
            shown.update(Text("No study chosen." if self.studies else "", style="dim"))
            plot.show([], title="accuracy", empty_text="no study")
            return
        table = self.table = build_table(results, metric=self.metric, title=f"study {self.chosen}")
        finished, live, _ = counts(results)
        box.border_title = f"Results — {self.chosen}: {finished} finished, {live} running"
        box.border_subtitle = f"m: {'final' if self.metric == 'best' else 'best'} accuracy"
        shown.update(results_table(table))
        plot.show_table(table)

    # --- keys -----------------------------------------------------------------------------

    def action_toggle_metric(self) -> None:
        self.metric = "final" if self.metric == "best" else "best"
        self.notify(f"Showing the {METRICS[self.metric]}.", timeout=2)
        self.show_study()

    def action_refresh(self) -> None:
        self.load_studies()

    def action_escape(self) -> None:
        self.app.go_back(quit_when_first=False)

    def action_back(self) -> None:
        self.app.go_back()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("back", "app.quit"):
            return first_screen_check(self, action)
        return True
