"""The runs viewer: every run of the runs folder in one sortable, filterable table.

Below the table: the highlighted run's summary, config.yaml and curves (test accuracy and
total loss per epoch). Marking two or more runs (space) switches that pane to a comparison:
their test accuracy overlaid, and a diff of their configs. Run folders are read (and
deleted) in thread workers only, so a large or slow runs folder never blocks the event loop;
partial and broken folders are listed like any run. The list is read again each time the
screen is shown (coming back from a dashboard included).

The screen lays out the table (:mod:`~kdtui.tui.widgets.runs_table`), the detail pane
(:mod:`~kdtui.tui.widgets.run_detail`) and the comparison pane
(:mod:`~kdtui.tui.widgets.run_compare`), runs the workers that read the runs folder and
hands what they read down to those widgets; it owns the keys' actions.

Usage::

    app.push_screen(RunsScreen())        # `kdtui runs`, or "all runs" from home
"""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import ContentSwitcher, DataTable, Footer, Input
from textual.worker import Worker, WorkerState, get_current_worker

from kdtui.errors import KdtuiError
from kdtui.store import RESUMABLE, RunDir, RunRow, check_deletable, delete_run, list_run_rows, read_run_row
from kdtui.store.export import export_epochs_csv, export_path
from kdtui.store.labels import rename_run, set_note, set_tags
from kdtui.store.query import known_keys, resolve_key
from kdtui.tui.messages import ResumeRun
from kdtui.tui.screens import first_screen_check
from kdtui.tui.widgets.run_compare import Comparison, RunComparePane, read_comparison
from kdtui.tui.widgets.run_detail import RunDetail, RunDetailPane, read_detail
from kdtui.tui.widgets.runs_table import RunsTable

WORKER_FAILURES = {"runs-list": "Could not read the runs folder",
                   "runs-labels": "Could not save",
                   "runs-column": "Could not add the column",
                   "runs-detail": "Could not read the run",
                   "runs-compare": "Could not read the marked runs",
                   "runs-export": "Could not export",
                   "runs-delete": "Could not delete"}


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
        Binding("m", "next_metric", "Metric", show=False),  # the overlay's title says so
        Binding("R", "resume", "Resume"),
        Binding("d", "delete", "Delete"),
        Binding("e", "export", "Export CSV"),
        Binding("t", "tag", "Tags"),
        Binding("n", "note", "Note", show=False),
        Binding("N", "rename", "Rename", show=False),
        Binding("c", "config_column", "Column", show=False),
        Binding("g", "group_seeds", "Group seeds", show=False),
        Binding("a", "analyse", "Analysis", show=False),
        Binding("s", "open_studies", "Studies", show=False),  # the footer is full; ? and the palette list it
        Binding("r,f5", "refresh", "Refresh"),
        Binding("escape", "escape", "Back", show=False),
        Binding("q", "back", "Back"),      # back one level…
        Binding("q", "app.quit", "Quit"),  # …or, on the first screen, quit (asking first)
    ]

    def __init__(self) -> None:
        super().__init__()
        self.detail_for: str | None = None   # the run id the detail pane shows or is loading
        self.deleting: set[str] = set()      # run ids whose folder a worker is deleting

    # --- layout -------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Input(placeholder="/ filter: words (name, status, dataset, models, method), tag:NAME, "
                    "config values (lr=0.05 amd.weight>1000)",
                    id="runs-filter", compact=True)
        yield RunsTable(id="runs-table", cursor_type="row", zebra_stripes=True, classes="panel")
        with ContentSwitcher(id="runs-detail", initial="runs-single"):
            yield RunDetailPane(id="runs-single")
            yield RunComparePane(id="runs-compare")
        yield Footer()

    @property
    def table(self) -> RunsTable:
        return self.query_one("#runs-table", RunsTable)

    @property
    def detail(self) -> RunDetailPane:
        return self.query_one("#runs-single", RunDetailPane)

    @property
    def compare(self) -> RunComparePane:
        return self.query_one("#runs-compare", RunComparePane)

    def on_mount(self) -> None:
        self.app.theme_changed_signal.subscribe(self, lambda _theme: self.theme_changed())
        self.table.fill()

    def on_screen_resume(self) -> None:
        # Shown first, or again: a dashboard may have resumed, finished or started runs meanwhile.
        self.load_rows()

    def theme_changed(self) -> None:
        # Status colours come from the theme: redraw the table and the detail with the new ones.
        self.detail_for = None
        self.table.fill()

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
            self.table.reading = False
            self.table.update_title()

    def show_rows(self, rows: list[RunRow]) -> None:
        if self.table.set_rows(rows):
            self.detail_for = None  # the highlighted run may have moved on too: read its detail again

    # --- the pane below the table ---------------------------------------------------------

    @on(RunsTable.SelectionChanged)
    @on(DataTable.RowHighlighted, "#runs-table")
    def show_selection(self) -> None:
        """Show the marked runs' comparison (2+ marked) or the highlighted run's detail."""
        table = self.table
        switcher = self.query_one("#runs-detail", ContentSwitcher)
        if len(table.marked) >= 2:
            shown = self.compare.comparison
            if switcher.current != "runs-compare" or shown is None or shown.run_ids != table.marked:
                self.load_comparison(table.marked_rows())
            switcher.current = "runs-compare"
        else:
            switcher.current = "runs-single"
            self.compare.show(None)
            row = table.highlighted()
            if row is None:
                self.show_empty()
            elif row.id != self.detail_for:
                self.detail_for = row.id
                self.load_detail(row)
        self.refresh_bindings()

    def show_empty(self) -> None:
        self.detail_for = None
        if self.table.reading:
            text = "Reading the runs folder…"
        elif self.table.run_rows:
            text = "No run matches the filter."
        else:
            text = f"No runs in {self.app.runs_root} yet."
        self.detail.show_empty(text)

    def show_detail(self, detail: RunDetail) -> None:
        if detail.row.id == self.detail_for:  # else the highlight moved on while this was read
            self.detail.show(detail)

    def show_comparison(self, comparison: Comparison) -> None:
        if comparison.run_ids == self.table.marked:  # else the marks changed while this was read
            self.compare.show(comparison)

    # --- actions ------------------------------------------------------------------------

    @on(Input.Changed, "#runs-filter")
    def filter_changed(self, event: Input.Changed) -> None:
        self.table.set_filter(event.value)

    @on(Input.Submitted, "#runs-filter")
    def filter_submitted(self) -> None:
        self.table.apply_filter()
        self.table.focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("back", "app.quit", "quit"):
            return first_screen_check(self, action)
        if action in ("toggle_diff_keys", "next_metric"):
            return len(self.table.marked) >= 2  # shown only while comparing
        return True

    def action_toggle_mark(self) -> None:
        self.table.toggle_mark()

    def action_focus_filter(self) -> None:
        self.query_one("#runs-filter", Input).focus()

    def action_next_sort(self) -> None:
        self.table.next_sort()

    def action_reverse_sort(self) -> None:
        self.table.reverse_sort()

    def action_toggle_diff_keys(self) -> None:
        self.compare.toggle_diff_keys()

    def action_next_metric(self) -> None:
        self.compare.next_metric()

    def action_refresh(self) -> None:
        self.table.reading = True
        self.detail_for = None      # re-read the detail too: the run may have moved on
        self.compare.show(None)
        self.table.update_title()
        self.load_rows()

    def action_escape(self) -> None:
        if self.query_one("#runs-filter", Input).has_focus:
            self.table.focus()
        else:
            self.app.go_back(quit_when_first=False)

    def action_back(self) -> None:
        self.app.go_back()

    def action_open_studies(self) -> None:
        self.app.open_studies()

    def action_resume(self) -> None:
        row = self.table.highlighted()
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
        self.post_message(ResumeRun(row.id))

    def action_delete(self) -> None:
        row = self.table.highlighted()
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
            self.table.drop_run(row.id)
            self.notify(f"Deleted {row.id}.", title="Deleted")
        elif error is not None:
            self.notify(error, title="Cannot delete", severity="error", timeout=10)
        self.load_rows()  # what is left, as it is now (a failed delete may have removed a part)

    def action_export(self) -> None:
        rows = self.selected_rows()
        if not rows:
            self.notify("No run to export.", severity="warning")
            return
        self.export(rows)

    # --- organising: tags, note, display name, config columns, seed groups -----------------

    def selected_rows(self) -> list[RunRow]:
        """The marked runs, else the highlighted one."""
        rows = self.table.marked_rows()
        highlighted = self.table.highlighted()
        return rows or ([highlighted] if highlighted is not None else [])

    def action_tag(self) -> None:
        rows = self.selected_rows()
        if not rows:
            return
        from kdtui.tui.screens.prompt import PromptScreen

        # The tags all of them share, to edit: those deleted go, those typed are added.
        common = [tag for tag in rows[0].tags if all(tag in row.tags for row in rows)]
        what = rows[0].name if len(rows) == 1 else f"the {len(rows)} marked runs"
        question = PromptScreen(f"Tags of {what}", value=" ".join(common), placeholder="baseline wrn16",
                                detail="Space-separated. Tags deleted here are removed, tags typed "
                                       "are added; filter with tag:NAME.")
        self.app.push_screen(question, lambda text: self.tags_entered(rows, common, text))

    def tags_entered(self, rows: list[RunRow], common: list[str], text: str | None) -> None:
        if text is None:
            return
        typed = text.replace(",", " ").split()
        removed = [tag for tag in common if tag not in typed]
        self.save_labels(rows, lambda run: set_tags(run, add=typed, remove=removed))

    def action_note(self) -> None:
        row = self.table.highlighted()
        if row is None:
            return
        from kdtui.tui.screens.prompt import PromptScreen

        question = PromptScreen(f"Note on {row.name}", value=row.note, placeholder="what this run tried",
                                detail="Shown in the detail pane; empty clears it.")
        self.app.push_screen(question, lambda text: self.note_entered(row, text))

    def note_entered(self, row: RunRow, text: str | None) -> None:
        if text is not None:
            self.save_labels([row], lambda run: set_note(run, text))

    def action_rename(self) -> None:
        row = self.table.highlighted()
        if row is None:
            return
        from kdtui.tui.screens.prompt import PromptScreen

        question = PromptScreen(f"Rename {row.name}", value=row.name,
                                detail=f"A display name: the folder and the id ({row.id}) stay, so "
                                       "students and studies that refer to it keep finding it.")
        self.app.push_screen(question, lambda text: self.name_entered(row, text))

    def name_entered(self, row: RunRow, text: str | None) -> None:
        if text is not None:
            self.save_labels([row], lambda run: rename_run(run, text.strip()))

    @work(thread=True, group="runs-labels", exit_on_error=False)
    def save_labels(self, rows: list[RunRow], change) -> None:
        error = None
        try:
            for row in rows:
                change(RunDir(row.path))
        except KdtuiError as exc:
            error = str(exc)
        self.app.call_from_thread(self.labels_saved, error)

    def labels_saved(self, error: str | None) -> None:
        if error is not None:
            self.notify(error, title="Not saved", severity="error", timeout=10)
        self.detail_for = None    # the detail shows the labels too
        self.load_rows()

    def action_config_column(self) -> None:
        from kdtui.tui.screens.prompt import PromptScreen

        shown = ", ".join(self.table.config_columns) or "none"
        question = PromptScreen("Config value as a column", placeholder="train.lr, amd.weight, seed…",
                                detail=f"A dotted config key, or its unique ending; a key shown "
                                       f"already is removed. Shown: {shown}.")
        self.app.push_screen(question, self.column_entered)

    def column_entered(self, text: str | None) -> None:
        if text and text.strip():
            self.add_column(text.strip())

    @work(thread=True, exclusive=True, group="runs-column", exit_on_error=False)
    def add_column(self, key: str) -> None:
        rows = self.table.run_rows
        try:
            resolve_key(key, known_keys(rows))   # reads the configs here, off the event loop
        except KdtuiError as exc:
            self.app.call_from_thread(self.notify, str(exc), title="No such column",
                                      severity="error", timeout=10)
            return
        self.app.call_from_thread(self.table.toggle_config_column, key)

    def action_group_seeds(self) -> None:
        self.table.toggle_group_seeds()

    def action_analyse(self) -> None:
        """The highlighted run's analysis screen (kdtui/tui/screens/analysis.py)."""
        row = self.table.highlighted()
        if row is not None:
            from kdtui.tui.screens.analysis import AnalysisScreen

            self.app.push_screen(AnalysisScreen(RunDir(row.path)))
