"""The runs viewer's comparison pane: the marked runs' test accuracy overlaid, and a diff
of their configs (only the keys that differ, or all of them).

Usage::

    comparison = read_comparison(rows)   # in a worker: reads the runs' folders
    pane.show(comparison)                # on the UI thread
    pane.toggle_diff_keys()
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.widgets import DataTable

from kdtui.store import RunDir, RunRow
from kdtui.store.export import config_diff
from kdtui.store.follow import RunHistory
from kdtui.tui.widgets.series_plot import Series, SeriesPlot


@dataclass
class Comparison:
    """The marked runs' configs and test-accuracy curves, read in a worker."""

    rows: list[RunRow]
    configs: list[dict[str, Any] | None]
    curves: list[tuple[list[int], list[float]]]

    @property
    def run_ids(self) -> list[str]:
        return [row.id for row in self.rows]


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


class RunComparePane(VerticalScroll):
    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.comparison: Comparison | None = None   # what is shown (None: nothing yet)
        self.only_differing = True

    def compose(self) -> ComposeResult:
        yield SeriesPlot(id="runs-overlay", classes="panel")
        with Vertical(id="runs-diff-panel", classes="panel"):
            yield DataTable(id="runs-diff", cursor_type="row", zebra_stripes=True)

    def show(self, comparison: Comparison | None) -> None:
        self.comparison = comparison
        if comparison is None:
            return
        labels = run_labels(comparison.rows)
        overlay = self.query_one("#runs-overlay", SeriesPlot)
        overlay.border_title = f"test accuracy % per epoch · {len(labels)} marked runs"
        overlay.show([Series(label, xs, ys) for label, (xs, ys) in zip(labels, comparison.curves)],
                     xlabel="epoch", integer_x=True, empty_text="no epoch recorded")
        self.fill_diff()

    def toggle_diff_keys(self) -> None:
        self.only_differing = not self.only_differing
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
