"""The dashboard's panels, in the order they fill its grid (left to right, top to bottom).

A new panel is a new module here with a :class:`Panel` widget class (see ``base.py``), a
line in ``PANELS`` and, if it needs any, rules in ``styles/dashboard.tcss``. The grid is
2×2 when wide (``#panels`` there sets its rows and columns) and one column when narrow.
"""

from kdtui.tui.panels.accuracy import AccuracyPanel
from kdtui.tui.panels.base import DashboardState, Panel
from kdtui.tui.panels.loss import LossPanel
from kdtui.tui.panels.lr import LrPanel
from kdtui.tui.panels.values import ValuesPanel

PANELS: list[type[Panel]] = [LossPanel, AccuracyPanel, LrPanel, ValuesPanel]

__all__ = ["PANELS", "DashboardState", "Panel", "AccuracyPanel", "LossPanel", "LrPanel", "ValuesPanel"]
