"""The accuracy panel: train and test accuracy per epoch, the best epoch marked, and the
teacher's accuracy as a reference line; the legend on the bottom border."""

from __future__ import annotations

from kdtui.tui.panels.base import DashboardState, Panel
from kdtui.tui.widgets.series_plot import Series, SeriesPlot, palette_colour

TEACHER_COLOUR = (230, 40, 40)   # the reference line and its legend entry


class AccuracyPanel(Panel, SeriesPlot):
    ID, TITLE = "accuracy", "accuracy %"

    def update_from(self, state: DashboardState) -> None:
        history, teacher = state.history, state.teacher_acc
        series = [Series(label, *history.epoch_series(key), color=palette_colour(index))
                  for index, (key, label) in enumerate((("train_acc", "train"), ("test_acc", "test")))]
        hlines = [(teacher, TEACHER_COLOUR)] if teacher is not None else []
        if teacher is not None:   # in the legend only (drawn as the line above)
            series.append(Series("teacher", [], [], color=TEACHER_COLOUR))
        points = []
        best = history.best_test()
        if best is not None:
            epoch, accuracy = best
            points.append(Series(f"best @{epoch}", [epoch], [accuracy], marker="@", color=palette_colour(3)))
        self.show(series, xlabel="epoch", integer_x=True, hlines=hlines, points=points, legend="border",
                  empty_text="the first test accuracy comes at the end of epoch 1")
