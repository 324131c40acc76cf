"""What every dashboard panel is: a widget drawn from a :class:`DashboardState`.

The dashboard owns the state (the run's history and summary, the view options) and hands
it down; a panel only draws it. The flags say when the dashboard redraws a panel:

* every panel: when epochs or the summary arrive, and on a new run;
* ``STEPS``: also as step records arrive, at most every few seconds (the dashboard paces
  these redraws by the panels' ``render_cost_s``, so a trainer sharing the CPU is not slowed);
* ``PACED``: a plot of every step, costly to draw: in the step view it is drawn at that
  paced rate only, not with each epoch; the view keys (step/epoch, scale, smoothing) redraw it.

Usage::

    class MyPanel(Panel, SeriesPlot):          # in kdtui/tui/panels/my_panel.py
        ID, TITLE = "mine", "my metric"
        def update_from(self, state: DashboardState) -> None:
            self.show([Series("x", *state.history.epoch_series("test_acc"))])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from kdtui.store import Summary
from kdtui.store.follow import RunHistory


@dataclass
class DashboardState:
    """What the panels draw: the run as read so far, and how the user wants to see it."""

    history: RunHistory
    summary: Summary | None
    epoch_view: bool = False      # the loss per epoch rather than per step ("e")
    smoothing: float = 0.9        # EMA of the step curves ("[", "]")
    scale: str = "auto"           # "auto" (log10 when terms span > 2 decades), "linear", "log10",
                                  # "normalised" ("l")
    weighted: bool = False        # each term times its factor in the total: they add up to it ("w")

    @property
    def teacher_acc(self) -> float | None:
        return self.summary.teacher_test_acc if self.summary is not None else None


class Panel:
    """Mixed into a widget class (first): ``class LossPanel(Panel, SeriesPlot)``."""

    ID: ClassVar[str]             # the widget's id (styles and tests find it by that)
    TITLE: ClassVar[str] = ""     # its border title
    STEPS: ClassVar[bool] = False
    PACED: ClassVar[bool] = False
    render_cost_s: float = 0.0    # CPU time of its last draw, for pacing (SeriesPlot measures it)

    def __init__(self, **kwargs) -> None:
        super().__init__(id=self.ID, classes="panel", **kwargs)
        self.border_title = self.TITLE

    def update_from(self, state: DashboardState) -> None:
        raise NotImplementedError

    def reset(self) -> None:
        """The run's records were replaced (another run, or a resume rewrote them): drop
        anything kept from them between draws."""
