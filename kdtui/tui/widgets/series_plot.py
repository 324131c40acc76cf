"""A line plot of named series, drawn with plotext inside Textual.

The series are handed over as data; the plot is built at render time for the widget's
actual width, downsampled to about two points per column, so redrawing a 100k-step run
costs the same as a short one. Non-finite points are dropped (plotext cannot draw them).
Ticks are round numbers (never "-0.0"); on a log axis they are labelled with the values.
The legend is drawn inside the plot (plotext's), or on the widget's bottom border, out of
the curves' way (``legend="border"``); there every series has a colour of the palette.

The caller may narrow the x-range to its last part (zoom) and put a cursor on it
(``set_view``): a vertical line, its x above the curves, and every series' value there next
to its name in the border legend (in the title line when the legend is inside); both are
kept when new data arrive.

Usage::

    plot = SeriesPlot(id="loss")
    plot.show([Series("total", steps, values)], title="loss", xlabel="step")
    plot.set_view(zoom=0.25, cursor=1.0)    # the last quarter of the x-range, cursor at its end
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Sequence

from rich.markup import escape
from textual.app import RenderResult
from textual_plotext import PlotextPlot

from kdtui.tui.series import downsample, log_tick_labels, nice_step, nice_ticks, tick_label


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
    hlines: list[tuple[float, tuple[int, int, int] | str]] = field(default_factory=list)   # (y, colour)
    points: list[Series] = field(default_factory=list)              # scatter marks, drawn last
    empty_text: str = "waiting for data…"
    integer_x: bool = False   # whole-number x ticks (epochs, steps), not plotext's 1.50, 2.00, …
    log_y: bool = False       # the y values are log10 of the quantity: ticks say the quantity
    legend: str = "inside"    # "inside" (plotext's, over the curves), "border" or "none"


CURSOR_COLOUR = (200, 200, 200)


@dataclass
class Readout:
    """The values of the series at the cursor: the x it landed on, and (label, y) per series."""

    x: float
    values: list[tuple[str, float]]

    def value_of(self, label: str, log_y: bool) -> float | None:
        """The series' value at the cursor, as the axis labels read it (log10 undone)."""
        for name, y in self.values:
            if name == label:
                return 10 ** y if log_y else y
        return None

    def text(self, xlabel: str, log_y: bool) -> str:
        return f"{xlabel or 'x'} {self.x:g}: " + "  ".join(
            f"{label or 'y'} {self.value_of(label, log_y):.4g}" for label, _ in self.values)


def x_window(series: list[Series], zoom: float) -> tuple[float, float] | None:
    """The x-range shown: the last ``zoom`` fraction of the data's x-range (None: no data)."""
    xs = [x for s in series for x in finite_points(s.xs, s.ys)[0]]
    if not xs:
        return None
    low, high = min(xs), max(xs)
    return (high - zoom * (high - low) if zoom < 1 else low), high


def readout_at(series: list[Series], window: tuple[float, float], cursor: float) -> Readout | None:
    """Each labelled series' point nearest to the cursor (``cursor``: 0 the window's left
    edge, 1 its right); the x is the first series' point there."""
    target = window[0] + cursor * (window[1] - window[0])
    values: list[tuple[str, float]] = []
    x_found: float | None = None
    for s in series:
        xs, ys = finite_points(s.xs, s.ys)
        inside = [(x, y) for x, y in zip(xs, ys) if window[0] <= x <= window[1]]
        if not inside:
            continue
        x, y = min(inside, key=lambda point: abs(point[0] - target))
        x_found = x if x_found is None else x_found
        values.append((s.label, y))
    return Readout(x_found, values) if x_found is not None else None


class SeriesPlot(PlotextPlot):
    """A PlotextPlot that draws a :class:`PlotSpec`."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.spec = PlotSpec()
        self.render_cost_s = 0.0  # CPU time of the last render, for callers pacing redraws
        self.zoom = 1.0                    # the fraction of the x-range shown (its last part)
        self.cursor: float | None = None   # 0..1 across the shown x-range; None: no cursor

    def set_view(self, zoom: float = 1.0, cursor: float | None = None) -> None:
        if (zoom, cursor) != (self.zoom, self.cursor):
            self.zoom, self.cursor = zoom, cursor
            self.update_legend()
            self.refresh()

    def readout(self) -> Readout | None:
        """What the cursor reads now (None without a cursor or data)."""
        if self.cursor is None:
            return None
        window = x_window(self.spec.series, self.zoom)
        return readout_at(self.spec.series, window, self.cursor) if window is not None else None

    def show(self, series: list[Series], **kwargs) -> None:
        spec = PlotSpec(series=series, **kwargs)
        if spec.legend == "border":   # every series needs a colour the legend can say
            spec.series = [s if s.color is not None else Series(s.label, s.xs, s.ys, s.marker, palette_colour(i))
                           for i, s in enumerate(series)]
        self.spec = spec
        self.update_legend()
        self.refresh()

    def update_legend(self) -> None:
        spec = self.spec
        if spec.legend == "border":
            drawn = any(finite_points(s.xs, s.ys)[0] for s in spec.series + spec.points)
            self.border_subtitle = legend_markup(spec, self.readout()) if drawn else ""

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
        inside = spec.legend == "inside"
        series_list = spec.series
        drawn_x: list[float] = []
        drawn_y: list[float] = []
        # The x-range scan only when zoomed or reading a cursor: the usual redraw skips it.
        window = x_window(series_list, self.zoom) if self.zoom < 1 or self.cursor is not None else None
        for series in series_list:
            xs, ys = finite_points(series.xs, series.ys)
            if window is not None and self.zoom < 1:
                xs, ys = within(xs, ys, window)
            xs, ys = downsample(xs, ys, budget)
            if xs:
                plt.plot(xs, ys, label=series.label if inside else None, marker=series.marker,
                         **colour_of(series))
                drawn_x += xs
                drawn_y += ys
        for series in spec.points:
            xs, ys = finite_points(series.xs, series.ys)
            if window is not None and self.zoom < 1:
                xs, ys = within(xs, ys, window)
            if xs:
                plt.scatter(xs, ys, label=series.label if inside else None, marker=series.marker,
                            **colour_of(series))
                drawn_x += xs
                drawn_y += ys
        drawn = bool(drawn_x)
        for y, colour in spec.hlines if drawn else ():  # a lone reference line would set the scale
            if math.isfinite(y):
                plt.hline(y, colour)
                drawn_y.append(y)
        title = spec.title
        readout = (readout_at(series_list, window, self.cursor)
                   if drawn and self.cursor is not None and window is not None else None)
        if readout is not None:   # the values are in the border legend, or here
            plt.vline(readout.x, CURSOR_COLOUR)
            where = (f"{spec.xlabel or 'x'} {readout.x:g}" if spec.legend == "border"
                     else readout.text(spec.xlabel, spec.log_y))
            title = where + (f" · {title}" if title else "")
        if drawn and self.zoom < 1:
            title = f"last {self.zoom:.0%} · " + title
        if drawn:
            self.set_ticks(min(drawn_x), max(drawn_x), min(drawn_y), max(drawn_y))
        plt.title(title if drawn else f"{spec.title} — {spec.empty_text}")
        plt.xlabel(spec.xlabel)
        plt.ylabel(spec.ylabel)
        return super().render()

    def set_ticks(self, x_low: float, x_high: float, y_low: float, y_high: float) -> None:
        plt, spec = self.plt, self.spec
        if spec.integer_x:
            xticks = nice_ticks(x_low, x_high, max(self.size.width // 10, 2), integer=True)
            plt.xticks(xticks, [tick_label(x, 1.0) for x in xticks])
        rows = max((self.size.height - 3) * 2 // 3, 3)   # about a tick every row and a half
        if spec.log_y:
            yticks, labels = log_tick_labels(y_low, y_high, rows)
        else:
            yticks = nice_ticks(y_low, y_high, rows)
            step = nice_step(y_high - y_low, rows) if y_high > y_low else None
            labels = [tick_label(y, step) for y in yticks]
        if yticks:
            plt.yticks(yticks, labels)


def legend_markup(spec: PlotSpec, readout: Readout | None = None) -> str:
    """"━ CE ━ KD …" in the series' colours, for a border (markup); with a readout, each
    series' value at the cursor after its name ("━ CE 0.512")."""

    if readout is not None:   # the names in their colours, no glyph: values make it long
        return " ".join(f"[{markup_colour(s.color)}]{escape(s.label)}[/] {short_number(value)}"
                        for s in spec.series if s.label
                        and (value := readout.value_of(s.label, spec.log_y)) is not None)
    parts = [f"[{markup_colour(s.color)}]━[/] {escape(s.label)}" for s in spec.series if s.label]
    parts += [f"[{markup_colour(s.color)}]{escape(s.marker[:1])}[/] {escape(s.label)}"
              for s in spec.points if s.label]
    return " ".join(parts)


def short_number(value: float) -> str:
    """Few characters: 0.512, 76.1, and 2 significant digits in powers of ten: 1e-4, 2.3e+5."""
    if value != 0 and (abs(value) < 1e-2 or abs(value) >= 1e5):
        mantissa, exponent = f"{value:.1e}".split("e")
        mantissa = mantissa.rstrip("0").rstrip(".")
        return f"{mantissa}e{int(exponent):+d}" if int(exponent) > 0 else f"{mantissa}e{int(exponent)}"
    return f"{value:.3g}"


def markup_colour(colour: tuple[int, int, int] | str | None) -> str:
    if isinstance(colour, tuple):
        return "rgb({},{},{})".format(*colour)
    return colour.rstrip("+") if colour else "default"


def colour_of(series: Series) -> dict[str, object]:
    return {"color": series.color} if series.color is not None else {}


def finite_points(xs: Sequence[float], ys: Sequence[float]) -> tuple[list[float], list[float]]:
    # zip stops at the shorter one: a series may be mid-append in the reader thread.
    pairs = [(x, y) for x, y in zip(xs, ys) if isinstance(y, (int, float)) and math.isfinite(y)]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def within(xs: list[float], ys: list[float], window: tuple[float, float]) -> tuple[list[float], list[float]]:
    pairs = [(x, y) for x, y in zip(xs, ys) if window[0] <= x <= window[1]]
    return [p[0] for p in pairs], [p[1] for p in pairs]
