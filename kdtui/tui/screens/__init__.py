"""The app's screens: home (launcher + recent runs), dashboard, runs viewer, dialogs."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from textual.screen import Screen


def first_screen_check(screen: Screen, action: str) -> bool:
    """For ``check_action``: of a screen's two ``q`` bindings, "back" is live above the first
    screen and "quit" on it, so the footer says what ``q`` does."""
    first = len(screen.app.screen_stack) <= 1
    return first if action in ("app.quit", "quit") else not first
