"""The runs viewer's detail pane: one run's summary, config.yaml and curves (test accuracy
and total loss per epoch).

Usage::

    detail = read_detail(row)        # in a worker: reads the run's folder
    pane.show(detail)                # on the UI thread
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Static

from kdtui.console import format_duration
from kdtui.store import RunDir, RunRow, Summary
from kdtui.store.follow import RunHistory
from kdtui.store.records import environment_fields
from kdtui.tui.widgets.runs_table import format_accuracy, status_text
from kdtui.tui.widgets.series_plot import Series, SeriesPlot


@dataclass
class RunDetail:
    """What the detail pane shows of one run, read in a worker."""

    row: RunRow
    summary: Summary | None
    config_text: str | None
    history: RunHistory
    environment: dict[str, str] = field(default_factory=dict)   # env.json, as env.* fields


def read_detail(row: RunRow) -> RunDetail:
    run = RunDir(row.path)
    try:
        config_text: str | None = run.config_path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        config_text = None
    history = RunHistory()
    history.add(run.epochs())
    return RunDetail(row, run.summary(), config_text, history,
                     environment_fields(run.environment()))


class RunDetailPane(VerticalScroll):
    def compose(self) -> ComposeResult:
        with Vertical(id="runs-curves"):
            yield SeriesPlot(id="runs-acc", classes="panel")
            yield SeriesPlot(id="runs-loss", classes="panel")
        with VerticalScroll(id="runs-info", classes="panel"):
            yield Static(id="runs-summary")
            yield Static(id="runs-config")

    def on_mount(self) -> None:
        self.query_one("#runs-acc").border_title = "test accuracy % per epoch"
        self.query_one("#runs-loss").border_title = "total loss per epoch"
        self.query_one("#runs-info").border_title = "summary · config.yaml"

    def show_empty(self, text: str) -> None:
        """No run to show, and why."""
        self.query_one("#runs-summary", Static).update(Text(text))
        self.query_one("#runs-config", Static).update("")
        self.query_one("#runs-acc", SeriesPlot).show([], empty_text="no run")
        self.query_one("#runs-loss", SeriesPlot).show([], empty_text="no run")

    def show(self, detail: RunDetail) -> None:
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
        lines: list[tuple[str, str | Text]] = []
        if row.display_name:
            lines.append(("name", row.display_name))
        if row.tags:
            lines.append(("tags", " ".join(f"#{tag}" for tag in row.tags)))
        if row.note:
            lines.append(("note", Text(row.note, style="italic")))
        lines += [
            ("status", status_text(row.status, colours)),
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
        environment = detail.environment
        versions = " · ".join(f"{key[4:]} {environment[key]}" for key in
                              ("env.kdtui", "env.torch", "env.cuda") if key in environment)
        if versions:
            lines.append(("versions", versions))
        if "env.gpus" in environment:
            lines.append(("gpus", environment["env.gpus"]))
        if row.error:
            lines.append(("error", Text(row.error, style=colours.get("text-error", ""))))
        if detail.summary is None:
            lines.append(("summary", Text("summary.json missing or unreadable", style="italic")))
        for label, value in lines:
            text.append(f"{label:<12}", style="bold")
            text.append_text(value if isinstance(value, Text) else Text(value))
            text.append("\n")
        return text
