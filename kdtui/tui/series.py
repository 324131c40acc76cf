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

