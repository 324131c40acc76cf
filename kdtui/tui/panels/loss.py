"""The loss panel: every loss term per step (smoothed) or per epoch, on a chosen scale.

The scale "auto" is log10 when the terms' typical values lie more than two decades apart
(AMD's A, P, N near 1e-5 beside a KD near 1 would sit on the zero line otherwise), linear
when not. The weighted view plots each term times its factor in the total (as the run
recorded them: weight, AMD's γ/3 for each of A, P, N, a warm-up's scale), so the plotted
terms add up to the total drawn with them. Each term keeps its colour in every view; the
legend is on the panel's bottom border, out of the curves' way.
"""

from __future__ import annotations

import math

from kdtui.tui.panels.base import DashboardState, Panel
from kdtui.tui.series import IncrementalEma, log10_values, normalized, spans_decades
from kdtui.tui.widgets.series_plot import Series, SeriesPlot, palette_colour

YLABELS = {"linear": "", "log10": "", "normalised": "loss / max"}


def scaled(ys: list[float], scale: str) -> list[float]:
    if scale == "log10":
        return log10_values(ys)
    if scale == "normalised":
        return normalized(ys)
    return ys


def effective_scale(scale: str, series: list[list[float]]) -> str:
    if scale != "auto":
        return scale
    return "log10" if spans_decades(series) else "linear"


class LossPanel(Panel, SeriesPlot):
    ID, TITLE = "loss", "loss"
    STEPS = PACED = True

    def __init__(self) -> None:
        super().__init__()
        self.smoothed: dict[tuple[str, bool], IncrementalEma] = {}   # per term and view (step view)

    def reset(self) -> None:
        self.smoothed.clear()

    def update_from(self, state: DashboardState) -> None:
        history = state.history
        terms = history.terms
        fallback = state.summary.term_weights if state.summary is not None else None
        weights = history.term_weights(fallback) if state.weighted else {}
        unweighted = [t for t in terms if t != "total" and state.weighted
                      and not all(t in w for w in weights.values())]
        raw: list[tuple[str, list[float], list[float]]] = []
        if state.epoch_view or not history.step_x:
            for term in terms:
                xs, ys = history.epoch_loss(term)
                if state.weighted and term != "total":
                    ys = [y * weights.get(x, {}).get(term, math.nan) for x, y in zip(xs, ys)]
                raw.append((term, xs, ys))
            view, xlabel = "per epoch", "epoch"
        else:
            xs = list(history.step_x)
            epochs = history.step_epoch
            for term in terms:
                values = history.step_loss.get(term, [])
                if state.weighted and term != "total":
                    values = [v * weights.get(e, {}).get(term, math.nan) for v, e in zip(values, epochs)]
                smoother = self.smoothed.setdefault((term, state.weighted), IncrementalEma())
                raw.append((term, xs, smoother.update(values, state.smoothing)))
            view, xlabel = f"per step, smoothing {state.smoothing:g}", "step"
        scale = effective_scale(state.scale, [ys for _, _, ys in raw])
        series = [Series(label_of(term, weights, state.weighted), xs, scaled(ys, scale),
                         color=palette_colour(index))
                  for index, (term, xs, ys) in enumerate(raw)]
        shown_scale = f"auto: {scale}" if state.scale == "auto" else scale
        what = "weighted: weight × term, adding up to total" if state.weighted else "terms as computed"
        self.border_title = f"loss — {what}, {view}, {shown_scale}"
        note = f"no weight recorded for {', '.join(unweighted)}" if unweighted else ""
        self.show(series, title=note, xlabel=xlabel, ylabel=YLABELS[scale], integer_x=True,
                  log_y=scale == "log10", legend="border")


def label_of(term: str, weights: dict[int, dict[str, float]], weighted: bool) -> str:
    """The term's name; in the weighted view with its (latest) factor: "A ×1.67e+03"."""
    if not weighted or term == "total" or not weights:
        return term
    factor = weights[max(weights)].get(term)
    return f"{term} ×{factor:.3g}" if factor is not None else term
