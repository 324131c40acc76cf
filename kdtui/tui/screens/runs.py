"""The runs viewer: every run of the runs folder in one sortable, filterable table.

Below the table: the highlighted run's summary, config.yaml and curves (test accuracy and
total loss per epoch). Marking two or more runs (space) switches that pane to a comparison:
their test accuracy overlaid, and a diff of their configs. Run folders are read (and
deleted) in thread workers only, so a large or slow runs folder never blocks the event loop;
partial and broken folders are listed like any run. The list is read again each time the
screen is shown (coming back from a dashboard included).

Usage::

    app.push_screen(RunsScreen())        # `kdtui runs`, or "all runs" from home
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from rich.cells import cell_len
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import ContentSwitcher, DataTable, Footer, Input, Static
from textual.worker import Worker, WorkerState, get_current_worker

from kdtui.console import format_duration
from kdtui.errors import KdtuiError
from kdtui.store import (RESUMABLE, RunDir, RunRow, Summary, check_deletable, delete_run,
                         list_run_rows, read_run_row)
from kdtui.store.export import config_diff, export_epochs_csv, export_path
from kdtui.store.follow import RunHistory
from kdtui.tui.widgets.series_plot import Series, SeriesPlot


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    sort_key: Callable[[RunRow], Any]   # None sorts last in both directions
    descending: bool                    # the direction a first sort by this column takes


COLUMNS = (
    Column("name", "name", lambda row: row.name.lower(), False),
    Column("status", "status", lambda row: row.status, False),
    Column("dataset", "dataset", lambda row: row.dataset.lower(), False),
    Column("pair", "teacher → student", lambda row: row.pair.lower(), False),
    Column("method", "method", lambda row: row.method, False),
    Column("best", "best", lambda row: row.best_acc, True),
    Column("final", "final", lambda row: row.final_acc, True),
    Column("epochs", "epochs", lambda row: row.epochs_done, True),
    Column("duration", "time", lambda row: row.duration_s, True),
    Column("started", "started", lambda row: row.id, True),   # ids start with the date
)
DEFAULT_SORT = len(COLUMNS) - 1
MARK = "●"
NAME_WIDTH = 32  # longer run names are cut in the table (the detail pane shows them whole)
FILTER_DELAY_S = 0.15  # the table is redrawn once typing pauses, not on every key

WORKER_FAILURES = {"runs-list": "Could not read the runs folder",
                   "runs-detail": "Could not read the run",
                   "runs-compare": "Could not read the marked runs",
                   "runs-export": "Could not export",
                   "runs-delete": "Could not delete"}
STATUS_COLOURS = {"finished": "text-success", "running": "text-primary", "stopped": "text-warning",
                  "starting": "text-warning", "failed": "text-error", "crashed": "text-error",
                  "broken": "text-error"}


def filter_rows(rows: list[RunRow], query: str) -> list[RunRow]:
    """Rows whose search text holds every word of ``query``."""
    words = query.lower().split()
    return [row for row in rows if all(word in row.search_text() for word in words)]


def sort_rows(rows: list[RunRow], column: Column, descending: bool) -> list[RunRow]:
    known = [row for row in rows if column.sort_key(row) is not None]
    unknown = [row for row in rows if column.sort_key(row) is None]
    return sorted(known, key=column.sort_key, reverse=descending) + unknown


def format_accuracy(value: float | None) -> str:
    return f"{value:.2f}" if value is not None else "-"


@dataclass
class RunDetail:
    """What the detail pane shows of one run, read in a worker."""

    row: RunRow
    summary: Summary | None
    config_text: str | None
    history: RunHistory


def read_detail(row: RunRow) -> RunDetail:
    run = RunDir(row.path)
    try:
        config_text: str | None = run.config_path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        config_text = None
    history = RunHistory()
    history.add(run.epochs())
    return RunDetail(row, run.summary(), config_text, history)


@dataclass
class Comparison:
    """The marked runs' configs and test-accuracy curves, read in a worker."""

    rows: list[RunRow]
    configs: list[dict[str, Any] | None]
    curves: list[tuple[list[int], list[float]]]


def read_comparison(rows: list[RunRow]) -> Comparison:
    configs, curves = [], []
    for row in rows:
        run = RunDir(row.path)
        configs.append(run.read_config())
        history = RunHistory()
        history.add(run.epochs())
        curves.append(history.epoch_series("test_acc"))
    return Comparison(rows, configs, curves)


def run_labels(rows: list[RunRow]) -> list[str]:
    """Run names, or ids where two marked runs share a name."""
    names = [row.name for row in rows]
    return [row.name if names.count(row.name) == 1 else row.id for row in rows]


class RunsTable(DataTable):
    """The runs table; Enter (select) opens the highlighted run, so the footer says so."""

    BINDINGS = [Binding("enter", "select_cursor", "Open")]


class RunsScreen(Screen):
    # Below 100 columns the detail pane's panels stack and scroll instead of sitting side by side.
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-wide")]
    AUTO_FOCUS = "#runs-table"
    BINDINGS = [
        Binding("space", "toggle_mark", "Mark"),
        Binding("slash", "focus_filter", "Filter"),
        Binding("o", "next_sort", "Sort"),
        Binding("O", "reverse_sort", "Reverse", show=False),
        Binding("D", "toggle_diff_keys", "Diff keys"),
        Binding("R", "resume", "Resume"),
        Binding("d", "delete", "Delete"),
        Binding("e", "export", "Export CSV"),
        Binding("r,f5", "refresh", "Refresh"),
        Binding("escape", "back", "Back", show=False),
        Binding("q", "app.quit", "Quit"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[RunRow] = []
        self.shown: list[RunRow] = []
        self.marked: list[str] = []          # run ids, in the order they were marked
        self.filter_text = ""
        self.sort_index = DEFAULT_SORT
        self.descending = COLUMNS[DEFAULT_SORT].descending
        self.only_differing = True
        self.reading = True
        self.detail_for: str | None = None   # the run id the detail pane shows or is loading
        self.comparison: Comparison | None = None
        self.deleting: set[str] = set()      # run ids whose folder a worker is deleting
        self._filter_timer: Timer | None = None

    # --- layout -------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Input(placeholder="/ filter: words of the name, status, dataset, models or method",
                    id="runs-filter", compact=True)
        yield RunsTable(id="runs-table", cursor_type="row", zebra_stripes=True, classes="panel")
        with ContentSwitcher(id="runs-detail", initial="runs-single"):
            with VerticalScroll(id="runs-single"):
                with Vertical(id="runs-curves"):
                    yield SeriesPlot(id="runs-acc", classes="panel")
                    yield SeriesPlot(id="runs-loss", classes="panel")
                with VerticalScroll(id="runs-info", classes="panel"):
                    yield Static(id="runs-summary")
                    yield Static(id="runs-config")
            with VerticalScroll(id="runs-compare"):
                yield SeriesPlot(id="runs-overlay", classes="panel")
                with Vertical(id="runs-diff-panel", classes="panel"):
                    yield DataTable(id="runs-diff", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#runs-acc").border_title = "test accuracy % per epoch"
        self.query_one("#runs-loss").border_title = "total loss per epoch"
        self.query_one("#runs-info").border_title = "summary · config.yaml"
        self.app.theme_changed_signal.subscribe(self, lambda _theme: self.theme_changed())
        self.fill_table()

    def on_screen_resume(self) -> None:
        # Shown first, or again: a dashboard may have resumed, finished or started runs meanwhile.
        self.load_rows()

    def theme_changed(self) -> None:
        # Status colours come from the theme: redraw the table and the detail with the new ones.
        self.detail_for = None
        self.fill_table()

    # --- reading the runs folder (thread workers) ---------------------------------------

    @work(thread=True, exclusive=True, group="runs-list", exit_on_error=False)
    def load_rows(self) -> None:
        rows = list_run_rows(self.app.runs_root)
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self.show_rows, rows)

    @work(thread=True, exclusive=True, group="runs-detail", exit_on_error=False)
    def load_detail(self, row: RunRow) -> None:
        detail = read_detail(row)
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self.show_detail, detail)

    @work(thread=True, exclusive=True, group="runs-compare", exit_on_error=False)
    def load_comparison(self, rows: list[RunRow]) -> None:
        comparison = read_comparison(rows)
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self.show_comparison, comparison)

    @work(thread=True, group="runs-export", exit_on_error=False)
    def export(self, rows: list[RunRow]) -> None:
        path = export_path(self.app.runs_root)
        count = export_epochs_csv([RunDir(row.path) for row in rows], path)
        what = rows[0].id if len(rows) == 1 else f"{len(rows)} runs"
        self.app.call_from_thread(self.notify, f"{count} epoch rows of {what} written to {path}",
                                  title="Exported")

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        # Workers hand their results over themselves; this keeps a failure from passing unseen.
        if event.state != WorkerState.ERROR:
            return
        self.notify(str(event.worker.error), title=WORKER_FAILURES.get(event.worker.group, "Error"),
                    severity="error", timeout=10)
        if event.worker.group == "runs-list":
            self.reading = False
            self.update_title()

    def show_rows(self, rows: list[RunRow]) -> None:
        changed = self.reading or rows != self.rows
        self.rows = rows
        self.reading = False
        if not changed:
            return  # read again on coming back, and nothing moved: keep the table as it is
        present = {row.id for row in rows}
        self.marked = [run_id for run_id in self.marked if run_id in present]
        self.detail_for = None  # the highlighted run may have moved on too: read its detail again
        self.fill_table()

    # --- the table ----------------------------------------------------------------------

    @property
    def table(self) -> DataTable:
        return self.query_one("#runs-table", DataTable)

    def highlighted(self) -> RunRow | None:
        row = self.table.cursor_row
        return self.shown[row] if self.shown and 0 <= row < len(self.shown) else None

    @property
    def filter_pending(self) -> bool:
        """Whether a filter change waits to be applied (typing has not paused yet)."""
        return self._filter_timer is not None

    def fill_table(self) -> None:
        """Redraw the table from the rows, filter and sort; the highlight stays on its run."""
        if self._filter_timer is not None:  # this redraw applies the filter too
            self._filter_timer.stop()
            self._filter_timer = None
        table = self.table
        current = self.highlighted()
        column = COLUMNS[self.sort_index]
        self.shown = sort_rows(filter_rows(self.rows, self.filter_text), column, self.descending)
        colours = self.app.theme_variables
        cells = [self.cells(row, colours) for row in self.shown]
        table.clear(columns=True)
        table.add_column(" ", key="mark", width=1)
        # Widths are given, not left to DataTable: it fits them to the cells only when idle, and
        # lines drawn before that would keep the header's widths.
        for index, spec in enumerate(COLUMNS, start=1):
            label = spec.label + ((" ↓" if self.descending else " ↑") if index - 1 == self.sort_index else "")
            width = max([cell_len(label), *(row[index].cell_len for row in cells)])
            table.add_column(label, key=spec.key, width=min(NAME_WIDTH, width) if spec.key == "name" else width)
        for row, row_cells in zip(self.shown, cells):
            table.add_row(*row_cells, key=row.id)
        if current is not None and current.id in {row.id for row in self.shown}:
            table.move_cursor(row=table.get_row_index(current.id), animate=False)
        self.update_title()
        self.show_selection()

    def cells(self, row: RunRow, colours: dict[str, str]) -> list[Text]:
        # Text cells, not str: a str cell is read as markup, and run names may hold '['.
        done = f"{row.epochs_done}/{row.epochs if row.epochs is not None else '?'}"
        return [
            Text(MARK if row.id in self.marked else " "),
            Text(row.name),
            Text(row.status, style=colours.get(STATUS_COLOURS.get(row.status, ""), "")),
            Text(row.dataset),
            Text(row.pair),
            Text(row.method),
            Text(format_accuracy(row.best_acc), justify="right"),
            Text(format_accuracy(row.final_acc), justify="right"),
            Text(done, justify="right"),
            Text(format_duration(row.duration_s), justify="right"),
            Text(row.started[:10]),  # the date; the time is in the id, in the detail pane
        ]

    def update_title(self) -> None:
        if self.reading:
            self.table.border_title = "runs · reading the runs folder…"
            return
        parts = [f"runs · {len(self.shown)} of {len(self.rows)}" if self.filter_text
                 else f"runs · {len(self.rows)}"]
        if self.marked:
            parts.append(f"{len(self.marked)} marked")
        column = COLUMNS[self.sort_index]
        parts.append(f"sorted by {column.label} {'↓' if self.descending else '↑'}")
        self.table.border_title = " · ".join(parts)
        self.table.border_subtitle = "space: mark 2+ runs to compare" if len(self.marked) < 2 else ""

    @on(DataTable.RowHighlighted, "#runs-table")
    def row_highlighted(self) -> None:
        self.show_selection()

    @on(DataTable.RowSelected, "#runs-table")
    def row_selected(self) -> None:
        self.action_open()

    @on(DataTable.HeaderSelected, "#runs-table")
    def header_selected(self, event: DataTable.HeaderSelected) -> None:
        keys = [column.key for column in COLUMNS]
        if event.column_key.value not in keys:
            return  # the mark column
        index = keys.index(event.column_key.value)
        if index == self.sort_index:
            self.descending = not self.descending
        else:
            self.sort_index, self.descending = index, COLUMNS[index].descending
        self.fill_table()

    @on(Input.Changed, "#runs-filter")
    def filter_changed(self, event: Input.Changed) -> None:
        # Redrawing a table of a thousand runs takes a few hundred milliseconds: once per pause.
        self.filter_text = event.value
        if self._filter_timer is not None:
            self._filter_timer.stop()
        self._filter_timer = self.set_timer(FILTER_DELAY_S, self.fill_table)

    @on(Input.Submitted, "#runs-filter")
    def filter_submitted(self) -> None:
        if self.filter_pending:
            self.fill_table()
        self.table.focus()

    # --- the detail pane ----------------------------------------------------------------

    def show_selection(self) -> None:
        """Show the marked runs' comparison (2+ marked) or the highlighted run's detail."""
        comparing = len(self.marked) >= 2
        switcher = self.query_one("#runs-detail", ContentSwitcher)
        if comparing:
            by_id = {row.id: row for row in self.rows}
            rows = [by_id[run_id] for run_id in self.marked]
            if switcher.current != "runs-compare" or self.comparison is None \
                    or [row.id for row in self.comparison.rows] != self.marked:
                self.load_comparison(rows)
            switcher.current = "runs-compare"
        else:
            switcher.current = "runs-single"
            self.comparison = None
            row = self.highlighted()
            if row is None:
                self.show_empty()
            elif row.id != self.detail_for:
                self.detail_for = row.id
                self.load_detail(row)
        self.refresh_bindings()

    def show_empty(self) -> None:
        self.detail_for = None
        if self.reading:
            text = "Reading the runs folder…"
        elif self.rows:
            text = "No run matches the filter."
        else:
            text = f"No runs in {self.app.runs_root} yet."
        self.query_one("#runs-summary", Static).update(Text(text))
        self.query_one("#runs-config", Static).update("")
        self.query_one("#runs-acc", SeriesPlot).show([], empty_text="no run")
        self.query_one("#runs-loss", SeriesPlot).show([], empty_text="no run")

    def show_detail(self, detail: RunDetail) -> None:
        if detail.row.id != self.detail_for:
            return  # the highlight moved on while this was read
        self.query_one("#runs-summary", Static).update(self.summary_text(detail))
        config = Text("config.yaml\n", style="bold", no_wrap=True)
        if detail.config_text is None:
            config.append("missing or unreadable", style="italic")
        else:
            body = Text(detail.config_text.rstrip("\n"), no_wrap=True)
            body.highlight_regex(r"(?m)^\s*[^\s:#][^:#]*:", style="bold")  # the keys
            config.append_text(body)
        self.query_one("#runs-config", Static).update(config)
        history = detail.history
        self.query_one("#runs-acc", SeriesPlot).show(
            [Series("", *history.epoch_series("test_acc"))], xlabel="epoch", integer_x=True,
            empty_text="no epoch recorded")
        self.query_one("#runs-loss", SeriesPlot).show(
            [Series("", *history.epoch_loss("total"))], xlabel="epoch", integer_x=True,
            empty_text="no epoch recorded")

    def summary_text(self, detail: RunDetail) -> Text:
        row, summary = detail.row, detail.summary or Summary()
        colours = self.app.theme_variables
        text = Text(row.id + "\n", style="bold")
        lines: list[tuple[str, str | Text]] = [
            ("status", Text(row.status, style=colours.get(STATUS_COLOURS.get(row.status, ""), ""))),
            ("started", row.started),
            ("epochs", f"{row.epochs_done}/{row.epochs if row.epochs is not None else '?'}"),
        ]
        best_epoch = summary.best_epoch
        lines.append(("best", f"{format_accuracy(row.best_acc)} %"
                      + (f" (epoch {best_epoch})" if best_epoch is not None else "")))
        lines.append(("final", f"{format_accuracy(row.final_acc)} %"))
        if row.teacher_acc is not None:
            lines.append(("teacher", f"{format_accuracy(row.teacher_acc)} %"))
        lines.append(("time", format_duration(row.duration_s)))
        for value, label in ((summary.device, "device"), (summary.teacher_id, "teacher run")):
            if value:
                lines.append((label, value))
        params = [f"{who} {count / 1e6:.2f}M" for count, who in
                  ((summary.student_params, "student"), (summary.teacher_params, "teacher"))
                  if count is not None]
        if params:
            lines.append(("params", " · ".join(params)))
        if row.error:
            lines.append(("error", Text(row.error, style=colours.get("text-error", ""))))
        if detail.summary is None:
            lines.append(("summary", Text("summary.json missing or unreadable", style="italic")))
        for label, value in lines:
            text.append(f"{label:<12}", style="bold")
            text.append_text(value if isinstance(value, Text) else Text(value))
            text.append("\n")
        return text

    def show_comparison(self, comparison: Comparison) -> None:
        if [row.id for row in comparison.rows] != self.marked:
            return  # the marks changed while this was read
        self.comparison = comparison
        labels = run_labels(comparison.rows)
        overlay = self.query_one("#runs-overlay", SeriesPlot)
        overlay.border_title = f"test accuracy % per epoch · {len(labels)} marked runs"
        overlay.show([Series(label, xs, ys) for label, (xs, ys) in zip(labels, comparison.curves)],
                     xlabel="epoch", integer_x=True, empty_text="no epoch recorded")
        self.fill_diff()

    def fill_diff(self) -> None:
        comparison = self.comparison
        if comparison is None:
            return
        rows = config_diff(comparison.configs, only_differing=self.only_differing)
        table = self.query_one("#runs-diff", DataTable)
        table.clear(columns=True)
        table.add_column("key", key="key")
        for index, label in enumerate(run_labels(comparison.rows)):
            table.add_column(label, key=f"run-{index}")
        for key, values in rows:
            table.add_row(Text(key), *(Text(value) for value in values), key=key)
        panel = self.query_one("#runs-diff-panel")
        which = "differing keys" if self.only_differing else "all keys"
        panel.border_title = f"config diff · {which}" + ("" if rows else " · none")

    # --- actions ------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "toggle_diff_keys":
            return len(self.marked) >= 2  # shown only while comparing
        return True

    def action_open(self) -> None:
        row = self.highlighted()
        if row is None:
            return
        try:
            self.app.open_dashboard(RunDir(row.path))
        except KdtuiError as exc:
            self.notify(str(exc), title="Cannot open the run", severity="error")

    def action_toggle_mark(self) -> None:
        row = self.highlighted()
        if row is None:
            return
        if row.id in self.marked:
            self.marked.remove(row.id)
        else:
            self.marked.append(row.id)
        table = self.table
        table.update_cell(row.id, "mark", Text(MARK if row.id in self.marked else " "))
        # The cursor moves on, so that space, space, space marks consecutive runs.
        if table.cursor_row < table.row_count - 1:
            table.move_cursor(row=table.cursor_row + 1)
        self.update_title()
        self.show_selection()

    def action_focus_filter(self) -> None:
        self.query_one("#runs-filter", Input).focus()

    def action_next_sort(self) -> None:
        self.sort_index = (self.sort_index + 1) % len(COLUMNS)
        self.descending = COLUMNS[self.sort_index].descending
        self.fill_table()

    def action_reverse_sort(self) -> None:
        self.descending = not self.descending
        self.fill_table()

    def action_toggle_diff_keys(self) -> None:
        self.only_differing = not self.only_differing
        self.fill_diff()

    def action_refresh(self) -> None:
        self.reading = True
        self.detail_for = None      # re-read the detail too: the run may have moved on
        self.comparison = None
        self.update_title()
        self.load_rows()

    def action_back(self) -> None:
        if self.query_one("#runs-filter", Input).has_focus:
            self.table.focus()
        elif len(self.app.screen_stack) > 1:
            self.app.pop_screen()

    def action_resume(self) -> None:
        row = self.highlighted()
        if row is None:
            return
        # The listed status may be stale (resumed from a dashboard since): read it again.
        fresh = read_run_row(RunDir(row.path))
        if fresh.status != row.status:
            self.load_rows()  # and show the others' as they are now too
        if fresh.status not in RESUMABLE:
            self.notify(f"{row.name} is {fresh.status}: only a stopped, failed or crashed run can be "
                        "resumed.", title="Cannot resume", severity="warning")
            return
        try:
            self.app.resume_run(row.id)
        except (KdtuiError, OSError) as exc:
            self.notify(str(exc), title="Cannot resume", severity="error")

    def action_delete(self) -> None:
        row = self.highlighted()
        if row is None:
            return
        if row.id in self.deleting:
            self.notify(f"{row.id} is being deleted.", title="Cannot delete", severity="warning")
            return
        run = RunDir(row.path)
        try:
            check_deletable(self.app.runs_root, run)
        except KdtuiError as exc:
            self.notify(str(exc), title="Cannot delete", severity="error", timeout=10)
            return
        from kdtui.tui.screens.confirm import ConfirmScreen

        question = ConfirmScreen(f"Delete run {row.id}?", yes="Delete", no="Keep",
                                 detail="Its folder goes for good: config, metrics, checkpoints.")
        self.app.push_screen(question, lambda yes: self.delete_confirmed(row, yes))

    def delete_confirmed(self, row: RunRow, yes: bool | None) -> None:
        if yes and row.id not in self.deleting:
            self.deleting.add(row.id)
            self.delete_folder(row)

    @work(thread=True, group="runs-delete", exit_on_error=False)
    def delete_folder(self, row: RunRow) -> None:
        """Delete the run's folder (checkpoints can take gigabytes: seconds) off the event loop."""
        deleted, error = False, None
        try:
            # Checked again: the run may have been resumed while the question was open.
            delete_run(self.app.runs_root, RunDir(row.path))
            deleted = True
        except KdtuiError as exc:
            error = str(exc)
        finally:  # an unexpected error is reported by on_worker_state_changed; list again anyway
            self.app.call_from_thread(self.delete_done, row, deleted, error)

    def delete_done(self, row: RunRow, deleted: bool, error: str | None) -> None:
        self.deleting.discard(row.id)
        if deleted:
            self.rows = [other for other in self.rows if other.id != row.id]
            if row.id in self.marked:
                self.marked.remove(row.id)
            self.fill_table()
            self.notify(f"Deleted {row.id}.", title="Deleted")
        elif error is not None:
            self.notify(error, title="Cannot delete", severity="error", timeout=10)
        self.load_rows()  # what is left, as it is now (a failed delete may have removed a part)

    def action_export(self) -> None:
        by_id = {row.id: row for row in self.rows}
        rows = [by_id[run_id] for run_id in self.marked]
        if not rows:
            highlighted = self.highlighted()
            rows = [highlighted] if highlighted is not None else []
        if not rows:
            self.notify("No run to export.", severity="warning")
            return
        self.export(rows)
