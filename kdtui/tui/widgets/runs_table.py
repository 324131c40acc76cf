"""The runs viewer's table: every run of the runs folder, sortable, filterable, markable.

The screen hands the rows down (:meth:`RunsTable.set_rows`) and reads back the highlighted
and marked runs; the table says what changed with messages: ``SelectionChanged`` (the marks
or the rows shown; a move of the highlight is DataTable's own ``RowHighlighted``) and
:class:`~kdtui.tui.messages.OpenRun` on Enter.

Usage::

    table = RunsTable(id="runs-table")
    table.set_rows(list_run_rows(root))
    table.set_filter("amd fail lr=0.05 tag:baseline")   # kdtui.store.query; applied once typing pauses
    table.toggle_config_column("train.lr")              # a config value as a column
    table.toggle_group_seeds()                          # runs alike but for the seed: one row
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from rich.cells import cell_len
from rich.text import Text
from textual import on, work
from textual.binding import Binding
from textual.message import Message
from textual.timer import Timer
from textual.widgets import DataTable
from textual.worker import get_current_worker

from kdtui.console import format_duration
from kdtui.errors import KdtuiError
from kdtui.store import RunDir, RunRow
from kdtui.store.query import RunQuery, known_keys, parse_query, resolve_key
from kdtui.study.formats import mean_pm
from kdtui.study.table import SeedGroup, group_by_seed
from kdtui.tui.messages import OpenRun


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
NAME_WIDTH = 32  # longer run names are cut in the table (the detail pane shows them whole)…
# …and these columns narrower still (to these widths, in this order) where the table would
# not fit otherwise, so that the last columns (started) are never cut off.
SHRINKABLE = (("name", 12), ("pair", 14), ("tags", 9), ("method", 10), ("dataset", 8))
FILTER_DELAY_S = 0.15  # the table is redrawn once typing pauses, not on every key
STATUS_COLOURS = {"finished": "text-success", "running": "text-primary", "stopped": "text-warning",
                  "starting": "text-warning", "failed": "text-error", "crashed": "text-error",
                  "broken": "text-error"}


def sort_rows(rows: list[RunRow], column: Column, descending: bool) -> list[RunRow]:
    known = [row for row in rows if column.sort_key(row) is not None]
    unknown = [row for row in rows if column.sort_key(row) is None]
    return sorted(known, key=column.sort_key, reverse=descending) + unknown


def format_accuracy(value: float | None) -> str:
    return f"{value:.2f}" if value is not None else "-"


def format_group(group: SeedGroup) -> str:
    """'72.00 ± 2.00 n=3' (sample std), or the one value of a group of one. The count is
    here, not after the name: long names are cut, and it would go with them."""
    return mean_pm(group) + (f" n={group.n}" if group.std is not None else "")


def format_config(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def status_text(status: str, colours: dict[str, str]) -> Text:
    """The status in its theme colour (``colours``: the app's theme variables)."""
    return Text(status, style=colours.get(STATUS_COLOURS.get(status, ""), ""))


class RunsTable(DataTable):
    """The runs table; Enter (select) opens the highlighted run, so the footer says so."""

    BINDINGS = [Binding("enter", "select_cursor", "Open")]

    class SelectionChanged(Message):
        """The marks or the rows shown changed: the pane below may show other runs."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.run_rows: list[RunRow] = []
        self.shown: list[RunRow] = []
        self.marked: list[str] = []          # run ids, in the order they were marked
        self.filter_text = ""
        self.filter_error = ""               # what is wrong with the filter typed, if anything
        self.config_columns: list[str] = []  # flattened config keys shown as columns
        self.group_seeds = False             # one row per runs alike but for train.seed
        self.show_tags = False               # a tags column (once some run has tags)
        self.groups: dict[str, SeedGroup] = {}   # by the id of the row shown for the group
        self._configs_for: list[RunRow] | None = None   # the rows whose configs a worker reads
        self.sort_index = DEFAULT_SORT
        self.descending = COLUMNS[DEFAULT_SORT].descending
        self.reading = True                  # the runs folder is being read
        self._filter_timer: Timer | None = None
        self._fitted_width = 0

    # --- config values: filter terms, columns, seed groups ------------------------------------

    @work(thread=True, exclusive=True, group="runs-configs", exit_on_error=False)
    def read_configs(self, rows: list[RunRow]) -> None:
        """Read the runs' config.yaml (a thousand take a while) off the event loop, then redraw."""
        worker = get_current_worker()
        for row in rows:
            if worker.is_cancelled:
                return
            row.config()
        self.app.call_from_thread(self.configs_read, rows)

    @property
    def reading_configs(self) -> bool:
        return self._configs_for is not None

    def configs_read(self, rows: list[RunRow]) -> None:
        if rows is self._configs_for:   # else newer rows came meanwhile, and are being read
            self._configs_for = None
            self.fill()

    def toggle_config_column(self, key: str) -> str:
        """Add the config value ``key`` (or the one key it is the ending of) as a column, or
        remove it; returns the key. KdtuiError for an unknown or ambiguous key."""
        resolved = resolve_key(key, known_keys(self.run_rows))
        if resolved in self.config_columns:
            self.config_columns.remove(resolved)
        else:
            self.config_columns.append(resolved)
        self.fill()
        return resolved

    def toggle_group_seeds(self) -> None:
        self.group_seeds = not self.group_seeds
        self.fill()

    def select_rows(self) -> list[RunRow]:
        """The rows to show, filtered (config terms once the configs are read), grouped when
        asked; sets :attr:`filter_error` and :attr:`groups`."""
        try:
            query = parse_query(self.filter_text)
            self.filter_error = ""
        except KdtuiError as exc:
            query, self.filter_error = RunQuery(), str(exc)
        configs_ready = all(row.config_read for row in self.run_rows)
        needs_configs = bool(self.config_columns or self.group_seeds or query.needs_config)
        if needs_configs and not configs_ready:
            if self._configs_for is not self.run_rows:
                self._configs_for = self.run_rows
                self.read_configs(self.run_rows)
            query = RunQuery(query.words, query.tags)   # the rest once the configs are read
        try:
            rows = query.filter(self.run_rows)
        except KdtuiError as exc:
            self.filter_error = str(exc)
            rows = RunQuery(query.words, query.tags).filter(self.run_rows)
        self.groups = {}
        if self.group_seeds and configs_ready:
            self.groups = {group.rows[0].id: group for group in group_by_seed(rows)}
        return rows

    def highlighted(self) -> RunRow | None:
        row = self.cursor_row
        return self.shown[row] if self.shown and 0 <= row < len(self.shown) else None

    def marked_rows(self) -> list[RunRow]:
        by_id = {row.id: row for row in self.run_rows}
        return [by_id[run_id] for run_id in self.marked]

    def set_rows(self, rows: list[RunRow]) -> bool:
        """Show these rows (marks of runs gone are dropped); False if nothing changed."""
        changed = self.reading or rows != self.run_rows
        earlier = {row.id: row for row in self.run_rows}
        for row in rows:
            if row.id in earlier:
                row.take_config_of(earlier[row.id])
        self.run_rows = rows
        self.reading = False
        if not changed:
            return False  # read again on coming back, and nothing moved: keep the table as it is
        present = {row.id for row in rows}
        self.marked = [run_id for run_id in self.marked if run_id in present]
        self.fill()
        return True

    def drop_run(self, run_id: str) -> None:
        self.run_rows = [row for row in self.run_rows if row.id != run_id]
        if run_id in self.marked:
            self.marked.remove(run_id)
        self.fill()

    # --- filter, sort and marks -----------------------------------------------------------

    @property
    def filter_pending(self) -> bool:
        """Whether a filter change waits to be applied (typing has not paused yet)."""
        return self._filter_timer is not None

    def set_filter(self, text: str) -> None:
        # Redrawing a table of a thousand runs takes a few hundred milliseconds: once per pause.
        self.filter_text = text
        if self._filter_timer is not None:
            self._filter_timer.stop()
        self._filter_timer = self.set_timer(FILTER_DELAY_S, self.fill)

    def apply_filter(self) -> None:
        """Apply a pending filter change now."""
        if self.filter_pending:
            self.fill()

    def sort_by(self, index: int, descending: bool | None = None) -> None:
        self.sort_index = index % len(COLUMNS)
        self.descending = COLUMNS[self.sort_index].descending if descending is None else descending
        self.fill()

    def next_sort(self) -> None:
        self.sort_by(self.sort_index + 1)

    def reverse_sort(self) -> None:
        self.sort_by(self.sort_index, not self.descending)

    @on(DataTable.HeaderSelected)
    def header_selected(self, event: DataTable.HeaderSelected) -> None:
        keys = [column.key for column in COLUMNS]
        if event.column_key.value not in keys:
            return  # the mark column, a config column
        index = keys.index(event.column_key.value)
        self.sort_by(index, not self.descending if index == self.sort_index else None)

    def toggle_mark(self) -> None:
        row = self.highlighted()
        if row is None:
            return
        if row.id in self.marked:
            self.marked.remove(row.id)
        else:
            self.marked.append(row.id)
        self.update_cell(row.id, "mark", Text(MARK if row.id in self.marked else " "))
        # The cursor moves on, so that space, space, space marks consecutive runs.
        if self.cursor_row < self.row_count - 1:
            self.move_cursor(row=self.cursor_row + 1)
        self.update_title()
        self.post_message(self.SelectionChanged())

    @on(DataTable.RowSelected)
    def row_selected(self) -> None:
        row = self.highlighted()
        if row is not None:
            self.post_message(OpenRun(RunDir(row.path)))

    # --- drawing --------------------------------------------------------------------------

    def fill(self) -> None:
        """Redraw from the rows, filter and sort; the highlight stays on its run."""
        if self._filter_timer is not None:  # this redraw applies the filter too
            self._filter_timer.stop()
            self._filter_timer = None
        current = self.highlighted()
        column = COLUMNS[self.sort_index]
        rows = self.select_rows()
        if self.groups:  # sorted as the groups read: the best column holds their means
            by_id = {row.id: row for row in rows}
            self.shown = [by_id[row.id] for row in sort_rows([g.row for g in self.groups.values()],
                                                             column, self.descending)]
        else:
            self.shown = sort_rows(rows, column, self.descending)
        colours = self.app.theme_variables
        self.show_tags = any(row.tags for row in self.run_rows)   # a column only once there are tags
        cells = [self.cells(row, colours) for row in self.shown]
        self.clear(columns=True)
        self.add_column(" ", key="mark", width=1)
        # Widths are given, not left to DataTable: it fits them to the cells only when idle, and
        # lines drawn before that would keep the header's widths. Config columns come before
        # the accuracies, the columns one compares them with.
        specs = [*((spec.key, spec.label) for spec in COLUMNS[:5]),
                 *([("tags", "tags")] if self.show_tags else []),
                 *((f"config:{key}", key) for key in self.config_columns),
                 *((spec.key, spec.label) for spec in COLUMNS[5:])]
        labels, widths = [], []
        for index, (key, label) in enumerate(specs, start=1):
            labels.append(label + ((" ↓" if self.descending else " ↑") if key == column.key else ""))
            widths.append(max([cell_len(labels[-1]), *(row[index].cell_len for row in cells)]))
        keys = [key for key, _ in specs]
        widths[keys.index("name")] = min(widths[keys.index("name")], NAME_WIDTH)
        # Cell padding is 1 a side; the mark column is 1 wide.
        excess = sum(widths) + 1 + 2 * (len(specs) + 1) - self.available_width()
        for key, least in SHRINKABLE:
            if key not in keys:
                continue
            index = keys.index(key)
            cut = max(0, min(excess, widths[index] - least))
            widths[index] -= cut
            excess -= cut
        for index, width in enumerate(widths, start=1):
            for row_cells in cells:
                if row_cells[index].cell_len > width:
                    row_cells[index].truncate(width, overflow="ellipsis")
        for key, label, width in zip(keys, labels, widths):
            self.add_column(label, key=key, width=width)
        self._fitted_width = self.available_width()
        for row, row_cells in zip(self.shown, cells):
            self.add_row(*row_cells, key=row.id)
        if current is not None and current.id in {row.id for row in self.shown}:
            self.move_cursor(row=self.get_row_index(current.id), animate=False)
        self.update_title()
        self.post_message(self.SelectionChanged())

    def available_width(self) -> int:
        """Columns the table's rows may use: its width inside the border, less the scrollbar's
        (the screen's less the border, before the first layout)."""
        width = self.size.width or self.app.size.width - 2
        return width - self.styles.scrollbar_size_vertical

    def on_resize(self) -> None:
        if self.run_rows and self._fitted_width != self.available_width():
            self.fill()

    def cells(self, row: RunRow, colours: dict[str, str]) -> list[Text]:
        # Text cells, not str: a str cell is read as markup, and run names may hold '['.
        done = f"{row.epochs_done}/{row.epochs if row.epochs is not None else '?'}"
        group = self.groups.get(row.id)
        best = format_group(group) if group is not None else format_accuracy(row.best_acc)
        return [
            Text(MARK if row.id in self.marked else " "),
            Text(row.name),
            status_text(row.status, colours),
            Text(row.dataset),
            Text(row.pair),
            Text(row.method),
            *([Text(" ".join(f"#{tag}" for tag in row.tags), style=colours.get("text-accent", ""))]
              if self.show_tags else []),
            *(Text(format_config(row.config().get(key)) if row.config_read else "…", justify="right")
              for key in self.config_columns),
            Text(best, justify="right"),
            Text(format_accuracy(row.final_acc), justify="right"),
            Text(done, justify="right"),
            Text(format_duration(row.duration_s), justify="right"),
            Text(row.started[:10]),  # the date; the time is in the id, in the detail pane
        ]

    def update_title(self) -> None:
        if self.reading:
            self.border_title = "runs · reading the runs folder…"
            return
        parts = [f"runs · {len(self.shown)} of {len(self.run_rows)}" if self.filter_text
                 else f"runs · {len(self.run_rows)}"]
        if self.marked:
            parts.append(f"{len(self.marked)} marked")
        column = COLUMNS[self.sort_index]
        parts.append(f"sorted by {column.label} {'↓' if self.descending else '↑'}")
        if self.group_seeds:
            parts.append("grouped by seed: mean ± std" if not self.reading_configs else "grouping by seed…")
        elif self.reading_configs:
            parts.append("reading configs…")
        self.border_title = " · ".join(parts)
        if self.filter_error:
            self.border_subtitle = Text(f"filter: {self.filter_error}",
                                        style=self.app.theme_variables.get("text-error", ""))
        else:
            self.border_subtitle = "space: mark 2+ runs to compare" if len(self.marked) < 2 else ""
