"""The runs viewer's comparison pane: one metric of the marked runs overlaid per epoch (test
accuracy first; ``m`` goes on to train accuracy, the total loss, each loss term they share,
the learning rate), and a diff of their configs (only the keys that differ, or all of them).

Usage::

    comparison = read_comparison(rows)   # in a worker: reads the runs' folders
    pane.show(comparison)                # on the UI thread
    pane.next_metric()
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
from kdtui.store.records import environment_fields
from kdtui.tui.widgets.series_plot import Series, SeriesPlot


# (epoch field, or "loss.<term>"; title) of the metrics every run has; the loss terms the
# marked runs share are added after the total.
METRICS = (("test_acc", "test accuracy %"), ("train_acc", "train accuracy %"), ("loss.total", "total loss"))
LR = ("lr", "learning rate")


@dataclass
class Comparison:
    """The marked runs' configs and epoch histories, read in a worker."""

    rows: list[RunRow]
    configs: list[dict[str, Any] | None]
    histories: list[RunHistory]

    @property
    def run_ids(self) -> list[str]:
        return [row.id for row in self.rows]

    def metrics(self) -> list[tuple[str, str]]:
        """What can be overlaid: the fixed metrics, the loss terms all runs have, the LR."""
        shared = None
        for history in self.histories:
            terms = [term for term in history.terms if term != "total"]
            shared = terms if shared is None else [term for term in shared if term in terms]
        return [*METRICS, *((f"loss.{term}", f"loss {term}") for term in shared or []), LR]

    def curves(self, key: str) -> list[tuple[list[int], list[float]]]:
        return [history.epoch_series(key) for history in self.histories]


def read_comparison(rows: list[RunRow]) -> Comparison:
    configs, histories = [], []
    for row in rows:
        run = RunDir(row.path)
        config = run.read_config()
        # What each ran on (env.json) is compared with the settings: a torch or commit that
        # differs is as likely a cause of a difference as a hyper-parameter.
        configs.append({**config, **environment_fields(run.environment())} if config is not None
                       else None)
        history = RunHistory()
        history.add(run.epochs())
        histories.append(history)
    return Comparison(rows, configs, histories)


def run_labels(rows: list[RunRow]) -> list[str]:
    """Run names, or ids where two marked runs share a name."""
    names = [row.name for row in rows]
    return [row.name if names.count(row.name) == 1 else row.id for row in rows]


class RunComparePane(VerticalScroll):
    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.comparison: Comparison | None = None   # what is shown (None: nothing yet)
        self.only_differing = True
        self.metric = METRICS[0][0]                  # what the overlay shows (kept across marks)

    def compose(self) -> ComposeResult:
        yield SeriesPlot(id="runs-overlay", classes="panel")
        with Vertical(id="runs-diff-panel", classes="panel"):
            yield DataTable(id="runs-diff", cursor_type="row", zebra_stripes=True)

    def show(self, comparison: Comparison | None) -> None:
        self.comparison = comparison
        if comparison is None:
            return
        self.draw_overlay()
        self.fill_diff()

    def draw_overlay(self) -> None:
        comparison = self.comparison
        if comparison is None:
            return
        metrics = dict(comparison.metrics())
        if self.metric not in metrics:
            self.metric = METRICS[0][0]
        labels = run_labels(comparison.rows)
        overlay = self.query_one("#runs-overlay", SeriesPlot)
        overlay.border_title = f"{metrics[self.metric]} per epoch · {len(labels)} marked runs · m: metric"
        curves = comparison.curves(self.metric)
        overlay.show([Series(label, xs, ys) for label, (xs, ys) in zip(labels, curves)],
                     xlabel="epoch", integer_x=True, empty_text="no epoch recorded")

    def next_metric(self) -> None:
        """Overlay the next metric (test acc → train acc → total loss → shared terms → LR)."""
        if self.comparison is None:
            return
        keys = [key for key, _ in self.comparison.metrics()]
        self.metric = keys[(keys.index(self.metric) + 1) % len(keys)] if self.metric in keys else keys[0]
        self.draw_overlay()

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
