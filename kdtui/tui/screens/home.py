"""The home screen: the run launcher beside the most recent runs.

The recent runs are read from the runs folder in a thread worker each time the screen is
shown (coming back from a dashboard included), so a slow or large runs folder never blocks
the launcher; the same read gives the launcher the finished runs a teacher can come from.

Usage::

    KdtuiApp(runs_root(), start="home").run()     # `kdtui` with no arguments
"""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static
from textual.worker import Worker, WorkerState

from kdtui.store import RunDir
from kdtui.store import RunRow, list_run_rows
from kdtui.tui.launcher import Launcher, display_path
from kdtui.tui.messages import OpenRun

RECENT_RUNS = 8
RECENT_NAME_WIDTH = 20  # longer names are cut (…): the best accuracy must stay in view


def cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


class HomeScreen(Screen):
    # Below 100 columns the recent runs go under the launcher instead of beside it.
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-wide")]
    BINDINGS = [
        Binding("ctrl+r", "start", "Start"),
        Binding("ctrl+s", "save_preset", "Save preset"),
        Binding("ctrl+o", "pick_preset", "Preset"),
        Binding("v", "open_runs", "All runs"),
        Binding("s", "open_studies", "Studies"),
    ]

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="home-body"):
            yield Launcher(id="launcher")
            with Vertical(id="recent-runs", classes="panel") as recent:
                recent.border_title = "Recent runs"
                recent.border_subtitle = "v: all runs"
                yield DataTable(id="recent-table", cursor_type="row", zebra_stripes=True)
                yield Static("Reading the runs folder…", id="recent-note", classes="muted")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "runs: " + display_path(self.app.runs_root)
        table = self.query_one("#recent-table", DataTable)
        # The accuracy right after the name: what is cut at the panel's edge is the method.
        table.add_column("run", width=RECENT_NAME_WIDTH)
        table.add_columns("best %", "status", "method")
        table.display = False

    def on_screen_resume(self) -> None:
        self._load_runs()

    @work(thread=True, exclusive=True, group="home-runs", exit_on_error=False)
    def _load_runs(self) -> None:
        rows = list_run_rows(self.app.runs_root)
        self.app.call_from_thread(self._show_runs, rows)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        # An unexpected error reading the runs folder is reported; the launcher still works.
        if event.state == WorkerState.ERROR and event.worker.group == "home-runs":
            self.query_one("#recent-note", Static).update(Text("Could not read the runs folder."))
            self.notify(str(event.worker.error), title="Could not read the runs folder", severity="error",
                        timeout=10)

    def _show_runs(self, rows: list[RunRow]) -> None:
        self.query_one(Launcher).set_finished_runs(rows)
        table = self.query_one("#recent-table", DataTable)
        table.clear()
        for row in rows[:RECENT_RUNS]:
            best = f"{row.best_acc:.2f}" if row.best_acc is not None else "-"
            table.add_row(Text(cut(row.name, RECENT_NAME_WIDTH)), Text(best, justify="right"), Text(row.status),
                          Text(row.method), key=str(row.path))
        table.display = bool(rows)
        note = self.query_one("#recent-note", Static)
        note.display = not rows
        note.update(Text(f"No runs yet in {display_path(self.app.runs_root)}. Start one with the launcher."))

    @on(DataTable.RowSelected, "#recent-table")
    def _run_chosen(self, event: DataTable.RowSelected) -> None:
        # The folder itself, not a reference to resolve: a broken run (no config.yaml) opens too.
        self.post_message(OpenRun(RunDir(Path(str(event.row_key.value)))))

    @on(Launcher.StartRun)
    def _start_run(self, event: Launcher.StartRun) -> None:
        self.app.start_run(event.args)

    @on(Launcher.Validated)
    def _validated(self) -> None:
        self.refresh_bindings()  # Start is greyed out in the footer while the form is invalid

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("start", "save_preset"):
            return True if self.query_one(Launcher).valid else None
        return True

    def action_start(self) -> None:
        self.query_one(Launcher).start()

    def action_save_preset(self) -> None:
        self.query_one(Launcher).save_as_preset()

    def action_pick_preset(self) -> None:
        self.query_one(Launcher).pick_preset()

    def action_open_runs(self) -> None:
        self.app.open_runs()

    def action_open_studies(self) -> None:
        self.app.open_studies()
