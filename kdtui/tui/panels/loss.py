"""The loss panel: every loss term per step (smoothed) or per epoch, on a chosen scale."""

from __future__ import annotations

from kdtui.tui.panels.base import DashboardState, Panel
from kdtui.tui.series import IncrementalEma, log10_values, normalized
from kdtui.tui.widgets.series_plot import Series, SeriesPlot, palette_colour

YLABELS = {"linear": "", "log10": "log10(loss)", "normalised": "loss / max"}


def scaled(ys: list[float], scale: str) -> list[float]:
    if scale == "log10":
        return log10_values(ys)
    if scale == "normalised":
        return normalized(ys)
    return ys


class LossPanel(Panel, SeriesPlot):
    ID, TITLE = "loss", "loss"
    STEPS = PACED = True

    def __init__(self) -> None:
        super().__init__()
        self.smoothed: dict[str, IncrementalEma] = {}   # per loss term, for the step view

    def reset(self) -> None:
        self.smoothed.clear()

    def update_from(self, state: DashboardState) -> None:
        history, series = state.history, []
        if state.epoch_view or not history.step_x:
            for index, term in enumerate(history.terms):
                xs, ys = history.epoch_loss(term)
                series.append(Series(term, xs, scaled(ys, state.scale), color=palette_colour(index)))
            view, xlabel = "per epoch", "epoch"
        else:
            xs = list(history.step_x)
            for index, term in enumerate(history.terms):
                smoother = self.smoothed.setdefault(term, IncrementalEma())
                ys = smoother.update(history.step_loss.get(term, []), state.smoothing)
                series.append(Series(term, xs, scaled(ys, state.scale), color=palette_colour(index)))
            view, xlabel = f"per step, smoothing {state.smoothing:g}", "step"
        self.border_title = f"loss — {view}, {state.scale}"
        self.show(series, title="", xlabel=xlabel, ylabel=YLABELS[state.scale], integer_x=xlabel == "epoch")
