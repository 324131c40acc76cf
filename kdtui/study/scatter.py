"""Figure 6 of the AMD paper: the final AM loss of runs against their test accuracy, as a
terminal scatter plot (plotext) with the Pearson correlation.

The loss of a run is the sum of the named terms (``A+P+N``) in its last epoch record.

Usage::

    points, skipped = loss_points(results, "A+P+N", metric="best")
    print(scatter_text(points, "A+P+N", "best test accuracy"), pearson(xs, ys))
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from kdtui.errors import KdtuiError
from kdtui.study.table import RunResult


@dataclass
class LossPoint:
    run_id: str
    loss: float
    accuracy: float


def parse_terms(expression: str) -> list[str]:
    terms = [t.strip() for t in expression.split("+")]
    if not expression.strip() or not all(terms):
        raise KdtuiError(f"--scatter: got {expression!r}, expected loss terms joined by '+', "
                         "e.g. --scatter A+P+N (the AM loss) or --scatter total.")
    return terms


def loss_points(results: list[RunResult], expression: str, metric: str) -> tuple[list[LossPoint], list[str]]:
    """(point per finished run having every term, ids of the runs left out and why)."""
    terms = parse_terms(expression)
    points, skipped = [], []
    for result in results:
        accuracy = result.accuracy(metric)
        if result.status != "finished" or accuracy is None:
            skipped.append(f"{result.id} ({result.status})")
            continue
        epochs = result.run.epochs()
        loss = epochs[-1].loss if epochs else {}
        missing = [t for t in terms if t not in loss]
        if missing:
            skipped.append(f"{result.id} (no {', '.join(missing)} in its last epoch)")
            continue
        points.append(LossPoint(result.id, sum(loss[t] for t in terms), accuracy))
    return points, skipped


def pearson(xs: list[float], ys: list[float]) -> float | None:
    """Pearson's r; None with fewer than two points or a constant variable."""
    n = len(xs)
    if n < 2 or len(ys) != n:
        return None
    mx, my = sum(xs) / n, sum(ys) / n
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
    sxx = sum((x - mx) ** 2 for x in xs)
    syy = sum((y - my) ** 2 for y in ys)
    if sxx == 0 or syy == 0:
        return None
    return sxy / math.sqrt(sxx * syy)


def scatter_text(points: list[LossPoint], expression: str, metric_label: str,
                 width: int = 80, height: int = 20, color: bool = False) -> str:
    import plotext as plt

    plt.clear_figure()
    plt.plotsize(width, height)
    plt.theme("pro" if color else "clear")
    plt.scatter([p.loss for p in points], [p.accuracy for p in points], marker="dot" if color else "•")
    plt.title(f"final {expression} loss vs {metric_label} ({len(points)} runs)")
    plt.xlabel(f"{expression} at the last epoch")
    plt.ylabel(f"{metric_label} %")
    text = plt.build()
    plt.clear_figure()
    return text if color else plt.uncolorize(text)


def correlation_line(points: list[LossPoint], expression: str, metric_label: str) -> str:
    r = pearson([p.loss for p in points], [p.accuracy for p in points])
    value = f"{r:+.3f}" if r is not None else "undefined (needs two runs that differ)"
    return f"Pearson r between final {expression} and {metric_label}: {value} over {len(points)} runs"
