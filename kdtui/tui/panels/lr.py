"""The learning-rate panel: the learning rate per epoch."""

from __future__ import annotations

from kdtui.tui.panels.base import DashboardState, Panel
from kdtui.tui.widgets.series_plot import Series, SeriesPlot


class LrPanel(Panel, SeriesPlot):
    ID, TITLE = "lr", "learning rate"

    def update_from(self, state: DashboardState) -> None:
        xs, ys = state.history.epoch_series("lr")
        self.show([Series("lr", xs, ys)], xlabel="epoch", integer_x=True)
