"""The dashboard's panels, in the order they fill its grid (left to right, top to bottom).

A new panel is a new module here with a :class:`Panel` widget class (see ``base.py``) and
a line in ``PANELS``. The grid (``#panels`` in ``styles/dashboard.tcss``) puts two panels in
a row when wide, adding rows as needed, and stacks them when narrow; rules of the new panel's
own, or other row heights (``grid-rows``), go in that file too if it needs any.
"""

from kdtui.tui.panels.accuracy import AccuracyPanel
from kdtui.tui.panels.base import DashboardState, Panel
from kdtui.tui.panels.loss import LossPanel
from kdtui.tui.panels.lr import LrPanel
from kdtui.tui.panels.values import ValuesPanel

PANELS: list[type[Panel]] = [LossPanel, AccuracyPanel, LrPanel, ValuesPanel]

__all__ = ["PANELS", "DashboardState", "Panel", "AccuracyPanel", "LossPanel", "LrPanel", "ValuesPanel"]
