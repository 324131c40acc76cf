"""The values panel: each metric's latest and best value above the run's log; the test
accuracy first (best with its epoch) and the teacher's next to it, then train accuracy and
the loss terms.

The dashboard writes the log lines to the ``#log`` widget as they are read; this panel
draws only the table."""

from __future__ import annotations

import math
from typing import Any

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable, Log

from kdtui.tui.panels.base import DashboardState, Panel


class ValuesPanel(Panel, Vertical):
    ID, TITLE = "side", "latest / best · log"
    STEPS = True   # before the first epoch ends, "latest" is the last step's loss

    def compose(self) -> ComposeResult:
        table = DataTable(id="values", cursor_type="none", zebra_stripes=True)
        table.add_columns("metric", "latest", "best")
        log = Log(id="log", max_lines=2000, auto_scroll=True)
        # Nothing here takes focus: a focused panel would scroll the narrow layout to itself.
        table.can_focus = log.can_focus = False
        yield table
        yield log

    def update_from(self, state: DashboardState) -> None:
        table = self.query_one("#values", DataTable)
        table.clear()
        history = state.history
        for metric, latest, best in history.latest_and_best():
            if metric == "test acc %":
                epoch = history.best_epoch()
                table.add_row(metric, fmt(latest), fmt(best) + (f" @{epoch}" if epoch is not None else ""))
                if state.teacher_acc is not None:
                    table.add_row("teacher acc %", fmt(state.teacher_acc), "")
            else:
                table.add_row(metric, fmt(latest), fmt(best))


def fmt(value: Any) -> str:
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return "-"
    return f"{value:.4g}" if abs(value) < 1000 else f"{value:,.0f}"
