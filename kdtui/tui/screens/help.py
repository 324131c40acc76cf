"""``?``: the keys of every screen, grouped by screen, the current one first, then those that
work everywhere. ``?`` or Esc closes it.

Usage::

    app.push_screen(HelpScreen(current=type(app.screen)))
"""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Static

EVERYWHERE = (("ctrl+q", "quit (asks first while a run started here trains)"), ("ctrl+p", "command palette"),
              ("ctrl+t", "light / dark theme"), ("?", "this help"))


def screen_keys(screen: type[Screen]) -> list[tuple[str, str]]:
    """(keys, what they do) of a screen's bindings, one line per key: a key bound twice (q:
    back above the first screen, quit on it) shows both."""
    keys: dict[str, list[str]] = {}
    for binding in screen.BINDINGS:
        if not isinstance(binding, Binding) or not binding.description:
            continue
        shown = {"left_square_bracket": "[", "right_square_bracket": "]", "escape": "esc",
                 "pagedown": "pgdn", "pageup": "pgup", "space": "space", "slash": "/", "comma": ",",
                 "full_stop": ".", "less_than_sign": "<", "greater_than_sign": ">"}
        key = ", ".join(shown.get(part, part) for part in binding.key.split(","))
        what = binding.description
        if what not in keys.setdefault(key, []):
            keys[key].append(what)
    return [(key, " / ".join(whats)) for key, whats in keys.items()]


def groups() -> list[tuple[str, type[Screen]]]:
    from kdtui.tui.screens.dashboard import DashboardScreen
    from kdtui.tui.screens.home import HomeScreen
    from kdtui.tui.screens.runs import RunsScreen
    from kdtui.tui.screens.studies import StudiesScreen

    return [("Home (launcher)", HomeScreen), ("Dashboard", DashboardScreen), ("Runs viewer", RunsScreen),
            ("Studies", StudiesScreen)]


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,question_mark,q", "dismiss(None)", "Close")]

    def __init__(self, current: type[Screen] | None = None) -> None:
        super().__init__()
        self.current = current

    def compose(self) -> ComposeResult:
        ordered = sorted(groups(), key=lambda group: group[1] is not self.current)
        with VerticalScroll(id="help-dialog", classes="panel") as box:
            box.border_title = "Keys — ? or esc closes"
            for name, screen in ordered:
                title = f"{name} (this screen)" if screen is self.current else name
                yield Static(keys_table(title, screen_keys(screen)), classes="help-group")
            yield Static(keys_table("Everywhere", list(EVERYWHERE)), classes="help-group")
            yield Static(Text("Esc and q go back one level on every screen; on the first screen q quits.",
                              style="italic"), classes="help-group")


def keys_table(title: str, rows: list[tuple[str, str]]) -> Table:
    table = Table(title=title, title_justify="left", title_style="bold", show_header=False, box=None, expand=True,
                  padding=(0, 2, 0, 0))
    table.add_column(style="bold cyan", no_wrap=True)
    table.add_column(ratio=1)
    for key, what in rows:
        table.add_row(Text(key), Text(what))
    return table
