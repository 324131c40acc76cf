"""What the studies screen shows of one study: its results table (the rows ``kdtui table``
prints, from :mod:`kdtui.study.formats`) and the plot of accuracy against the swept value,
one line per method/teacher, each point with its ± sample std as an error bar.

Usage::

    view.query_one(StudyPlot).show_table(table)
    Static(results_table(table))
"""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.table import Table as RichTable
from rich.text import Text

from kdtui.study.formats import cells, columns, header_line, unfinished_lines
from kdtui.study.overview import plot_lines
from kdtui.study.table import Table
from kdtui.tui.widgets.series_plot import Series, SeriesPlot, palette_colour


def results_table(table: Table) -> RenderableType:
    """The table as ``kdtui table`` prints it, as a Rich table, with its unfinished runs."""
    shown = RichTable(title=header_line(table), title_justify="left", title_style="bold", expand=False,
                      box=None, padding=(0, 1), header_style="bold")
    for i, column in enumerate(columns(table)):
        shown.add_column(column, justify="left" if i < len(table.keys) else "right", no_wrap=True)
    for row in table.rows:
        shown.add_row(*cells(table, row))
    parts: list[RenderableType] = [shown]
    if not table.rows:
        parts.append(Text("(no finished runs yet)", style="dim"))
    if table.sources:
        parts.append(Text("paper: " + "; ".join(table.sources), style="dim"))
    parts += [Text(line, style="dim") for line in unfinished_lines(table)]
    return Group(*parts)


class StudyPlot(SeriesPlot):
    """Accuracy against the swept value, with error bars (± sample std over seeds)."""

    def show_table(self, table: Table) -> None:
        xlabel, lines = plot_lines(table)
        series: list[Series] = []
        bars: list[Series] = []
        for index, line in enumerate(lines):
            colour = palette_colour(index)
            series.append(Series(line.label, line.xs, line.means, color=colour))
            for x, mean, std in zip(line.xs, line.means, line.stds):
                if std is not None:   # a vertical segment from mean - std to mean + std
                    bars.append(Series("", [x, x], [mean - std, mean + std], color=colour))
        ticks = {x: tick for line in lines for x, tick in line.ticks.items()}
        self.show(series + bars, title=f"{table.metric_label} (%), mean ± std over seeds",
                  xlabel=xlabel, ylabel="%", legend="border",
                  empty_text="no finished run yet")
        self.x_ticks = ticks

    def set_ticks(self, x_low: float, x_high: float, y_low: float, y_high: float) -> None:
        super().set_ticks(x_low, x_high, y_low, y_high)
        ticks = getattr(self, "x_ticks", None)
        if ticks:   # the swept values themselves (or what the positions 1, 2, … stand for)
            xs = sorted(ticks)
            self.plt.xticks(xs, [ticks[x] for x in xs])
        # A margin on both sides, so the error bars of the first and last values clear the frame.
        pad = (x_high - x_low) * 0.04 if x_high > x_low else 0.5
        self.plt.xlim(x_low - pad, x_high + pad)
