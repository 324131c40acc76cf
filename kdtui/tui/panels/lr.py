"""The learning-rate panel: the learning rate of each epoch, drawn as steps (it is constant
within an epoch), from the first step record of the first epoch on."""

from __future__ import annotations

from kdtui.tui.panels.base import DashboardState, Panel
from kdtui.tui.widgets.series_plot import Series, SeriesPlot, palette_colour


def staircase(lr_of_epoch: dict[int, float]) -> tuple[list[float], list[float]]:
    """Epoch e's rate held from e − 1 to e (x in epochs): a flat run per epoch, a jump between."""
    xs: list[float] = []
    ys: list[float] = []
    for epoch in sorted(lr_of_epoch):
        xs += [epoch - 1, epoch]
        ys += [lr_of_epoch[epoch]] * 2
    return xs, ys


class LrPanel(Panel, SeriesPlot):
    ID, TITLE = "lr", "learning rate"
    STEPS = True   # the first epoch's rate is known from its first step record

    def update_from(self, state: DashboardState) -> None:
        xs, ys = staircase(state.history.lr_of_epoch)
        self.show([Series("lr", xs, ys, color=palette_colour(1))], xlabel="epoch",
                  integer_x=True, legend="border")
