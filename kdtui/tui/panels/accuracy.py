"""The accuracy panel: train and test accuracy per epoch, the best epoch marked, and the
teacher's accuracy as a reference line."""

from __future__ import annotations

from kdtui.tui.panels.base import DashboardState, Panel
from kdtui.tui.widgets.series_plot import Series, SeriesPlot


class AccuracyPanel(Panel, SeriesPlot):
    ID, TITLE = "accuracy", "accuracy %"

    def update_from(self, state: DashboardState) -> None:
        history, teacher = state.history, state.teacher_acc
        series = [Series(label, *history.epoch_series(key))
                  for key, label in (("train_acc", "train"), ("test_acc", "test"))]
        hlines = [(teacher, "red")] if teacher is not None else []
        points = []
        xs, ys = history.epoch_series("test_acc")
        if ys:
            best = max(range(len(ys)), key=ys.__getitem__)
            points.append(Series(f"best {ys[best]:.2f} @{xs[best]}", [xs[best]], [ys[best]], marker="@"))
        title = f"teacher {teacher:.2f}% (red line)" if hlines else ""
        self.show(series, title=title, xlabel="epoch", integer_x=True, hlines=hlines, points=points)
