"""Series helpers for the plots: smoothing, downsampling and scales (pure Python).

Usage::

    smoothed = IncrementalEma().update(values, 0.9)
    xs, ys = downsample(xs, ys, points=2 * plot_width)
"""

from __future__ import annotations

import math
from typing import Sequence

def ema(values: Sequence[float], smoothing: float) -> list[float]:
    """Exponential moving average as TensorBoard's slider: 0 = raw, 0.99 = very smooth.

    Bias-corrected, so the first points are not dragged towards zero; NaNs are skipped.
    """
    return IncrementalEma().update(values, smoothing)


class IncrementalEma:
    """:func:`ema` of a growing series, computing only the new points on each call (a long
    run's loss curve is re-smoothed every redraw otherwise)."""

    def __init__(self) -> None:
        self.smoothing: float | None = None
        self.out: list[float] = []
        self.last = 0.0
        self.weight = 0.0

    def update(self, values: Sequence[float], smoothing: float) -> list[float]:
        if smoothing != self.smoothing or len(values) < len(self.out):
            self.__init__()  # new smoothing, or a shorter (reset) series: start over
            self.smoothing = smoothing
        for value in values[len(self.out):]:
            if smoothing <= 0:
                self.out.append(value)
            elif not math.isfinite(value):
                self.out.append(math.nan)
            else:
                self.last = self.last * smoothing + (1 - smoothing) * value
                self.weight = self.weight * smoothing + (1 - smoothing)
                self.out.append(self.last / self.weight)
        return self.out


def downsample(xs: Sequence[float], ys: Sequence[float], points: int) -> tuple[list[float], list[float]]:
    """At most about ``points`` points: the mean of each bucket (keeps the curve's shape,
    costs O(n)), so redrawing a 100k-step run stays as cheap as a short one."""
    n = len(xs)
    if points <= 0 or n <= points:
        return list(xs), list(ys)
    size = math.ceil(n / points)
    out_x, out_y = [], []
    for start in range(0, n, size):
        chunk = [y for y in ys[start:start + size] if math.isfinite(y)]
        if chunk:
            out_x.append(xs[min(start + size, n) - 1])
            out_y.append(sum(chunk) / len(chunk))
    return out_x, out_y


def log10_values(ys: Sequence[float]) -> list[float]:
    """log10 of each value; non-positive values become NaN (not plotted).

    The plot draws these on a linear axis: plotext's own log-y scale crashes on redraw
    inside textual-plotext (plotext issue 209)."""
    return [math.log10(y) if y > 0 and math.isfinite(y) else math.nan for y in ys]


def normalized(ys: Sequence[float]) -> list[float]:
    """Each value over the series' largest magnitude, so terms of any scale share one axis."""
    finite = [abs(y) for y in ys if math.isfinite(y)]
    top = max(finite) if finite else 0.0
    return [y / top if top > 0 and math.isfinite(y) else math.nan for y in ys]



def nice_step(span: float, most: int) -> float:
    """The smallest round tick spacing (1, 2, 2.5 or 5 × 10^k) giving at most ``most`` ticks
    over ``span``."""
    if span <= 0 or not math.isfinite(span):
        return 1.0
    raw = span / max(most - 1, 1)
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        if factor * power >= raw:
            return factor * power
    return 10 * power


def nice_ticks(low: float, high: float, most: int, integer: bool = False) -> list[float]:
    """Round-number ticks (…, 20, 40, 60, …) inside [low, high], at most ``most`` of them;
    whole numbers only when ``integer`` (steps, epochs)."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return []
    if high <= low:
        return [low]
    step = nice_step(high - low, most)
    if integer:
        step = max(1.0, math.ceil(step))
    first = math.ceil(low / step - 1e-9) * step
    ticks = []
    value = first
    while value <= high + 1e-9 * step:
        ticks.append(0.0 if abs(value) < 1e-12 * step else round(value, 12))
        value = first + len(ticks) * step
    return ticks


def tick_label(value: float, step: float | None = None) -> str:
    """A tick's label: as few digits as the spacing needs, never "-0"."""
    if value == 0:
        return "0"
    if step is not None and step >= 1 and float(value).is_integer():
        return f"{int(value):,}" if abs(value) >= 10000 else str(int(value))
    text = f"{value:.3g}"
    return "0" if text in ("-0", "0", "-0.0") else text


def log_tick_labels(low: float, high: float, most: int) -> tuple[list[float], list[str]]:
    """Ticks of a log10 axis (the plotted values are exponents) labelled with the values
    themselves: whole decades (1e-05, 0.001, 0.1, 10) when the axis spans any."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return [], []
    decades = list(range(math.ceil(low - 1e-9), math.floor(high + 1e-9) + 1))
    if len(decades) >= 2:
        stride = max(1, math.ceil(len(decades) / max(most, 1)))
        ticks = [float(d) for d in decades[::stride]]
    else:  # less than a decade: round values between
        ticks = [math.log10(v) for v in nice_ticks(10 ** low, 10 ** high, most) if v > 0]
    return ticks, [tick_label(round(10 ** t, 12)) if -4 <= t <= 4 else f"1e{round(t):+03d}"
                   if float(t).is_integer() else f"{10 ** t:.2g}" for t in ticks]


def spans_decades(series: Sequence[Sequence[float]], decades: float = 2.0) -> bool:
    """Whether the series' typical values (each one's median of positive finite values) lie
    more than ``decades`` powers of ten apart: a linear axis would flatten the small ones."""
    typical = []
    for values in series:
        positive = sorted(v for v in values if math.isfinite(v) and v > 0)
        if positive:
            typical.append(positive[len(positive) // 2])
    return len(typical) >= 2 and math.log10(max(typical) / min(typical)) > decades
