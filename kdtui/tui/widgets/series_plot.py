"""A line plot of named series, drawn with plotext inside Textual.

The series are handed over as data; the plot is built at render time for the widget's
actual width, downsampled to about two points per column, so redrawing a 100k-step run
costs the same as a short one. Non-finite points are dropped (plotext cannot draw them).

Usage::

    plot = SeriesPlot(id="loss")
    plot.show([Series("total", steps, values)], title="loss", xlabel="step")
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Sequence

from textual.app import RenderResult
from textual_plotext import PlotextPlot

from kdtui.tui.series import downsample


@dataclass
class Series:
    label: str
    xs: Sequence[float]
    ys: Sequence[float]
    marker: str = "braille"
    color: tuple[int, int, int] | str | None = None   # None: the plot's next colour


# Distinct on dark and light backgrounds (Okabe-Ito's palette for colour-blind readers, then
# a few more): what series that must never share a colour (the loss terms) are drawn in.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (230, 159, 0), (86, 180, 233), (0, 158, 115), (240, 228, 66), (0, 114, 178), (213, 94, 0),
    (204, 121, 167), (150, 150, 150), (170, 110, 40), (128, 0, 128), (0, 128, 128), (128, 128, 0),
)


def palette_colour(index: int) -> tuple[int, int, int]:
    return PALETTE[index % len(PALETTE)]


@dataclass
class PlotSpec:
    series: list[Series] = field(default_factory=list)
    title: str = ""
    xlabel: str = ""
    ylabel: str = ""
    hlines: list[tuple[float, str]] = field(default_factory=list)   # (y, colour)
    points: list[Series] = field(default_factory=list)              # scatter marks, drawn last
    empty_text: str = "waiting for data…"
    integer_x: bool = False   # whole-number x ticks (epochs), not plotext's 1.50, 2.00, …


class SeriesPlot(PlotextPlot):
    """A PlotextPlot that draws a :class:`PlotSpec`."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.spec = PlotSpec()
        self.render_cost_s = 0.0  # CPU time of the last render, for callers pacing redraws

    def show(self, series: list[Series], **kwargs) -> None:
        self.spec = PlotSpec(series=series, **kwargs)
        self.refresh()

    def render(self) -> RenderResult:
        started = time.perf_counter()
        rendered = self.build_plot()
        self.render_cost_s = time.perf_counter() - started
        return rendered

    def build_plot(self) -> RenderResult:
        plt = self.plt
        plt.clear_figure()
        spec = self.spec
        budget = max(2 * self.size.width, 16)
        drawn = False
        for series in spec.series:
            xs, ys = finite_points(series.xs, series.ys)
            xs, ys = downsample(xs, ys, budget)
            if xs:
                plt.plot(xs, ys, label=series.label, marker=series.marker, **colour_of(series))
                drawn = True
        for series in spec.points:
            xs, ys = finite_points(series.xs, series.ys)
            if xs:
                plt.scatter(xs, ys, label=series.label, marker=series.marker, **colour_of(series))
                drawn = True
        for y, colour in spec.hlines if drawn else ():  # a lone reference line would set the scale
            if math.isfinite(y):
                plt.hline(y, colour)
        if drawn and spec.integer_x:
            xs_all = [x for series in spec.series + spec.points for x in series.xs]
            plt.xticks(integer_ticks(min(xs_all), max(xs_all), max(self.size.width // 10, 2)))
        plt.title(spec.title if drawn else f"{spec.title} — {spec.empty_text}")
        plt.xlabel(spec.xlabel)
        plt.ylabel(spec.ylabel)
        return super().render()


def colour_of(series: Series) -> dict[str, object]:
    return {"color": series.color} if series.color is not None else {}


def finite_points(xs: Sequence[float], ys: Sequence[float]) -> tuple[list[float], list[float]]:
    # zip stops at the shorter one: a series may be mid-append in the reader thread.
    pairs = [(x, y) for x, y in zip(xs, ys) if isinstance(y, (int, float)) and math.isfinite(y)]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def integer_ticks(low: float, high: float, most: int) -> list[int]:
    """At most ``most`` evenly spaced whole numbers from ``low`` to ``high``."""
    low, high = math.floor(low), math.ceil(high)
    step = max(1, math.ceil((high - low) / max(most - 1, 1)))
    return list(range(low, high + 1, step))
