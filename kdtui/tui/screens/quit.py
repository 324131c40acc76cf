"""Asked when quitting while runs this app started still train: stop them, or leave them
running in the background (and how to watch them later), or cancel.

Usage::

    app.push_screen(QuitScreen(["20261128-101500-quickstart"]), on_choice)  # "stop" | "leave" | None
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label


def watch_hint(run_ids: list[str]) -> str:
    """The command to watch the runs later."""
    return f"kdtui watch {run_ids[0]}" if len(run_ids) == 1 else "kdtui runs"


class QuitScreen(ModalScreen[str | None]):
    BINDINGS = [
        Binding("escape", "choose('')", "Cancel"),
        Binding("s", "choose('stop')", "Stop the run"),
        Binding("l", "choose('leave')", "Leave it running"),
    ]

    def __init__(self, run_ids: list[str], count: int = 1) -> None:
        super().__init__()
        self.run_ids = run_ids
        self.count = max(count, len(run_ids), 1)

    def compose(self) -> ComposeResult:
        many = self.count > 1
        them = "them" if many else "it"
        question = (f"{self.count} runs started here are still training." if many
                    else "A run started here is still training" + (f": {self.run_ids[0]}." if self.run_ids else "."))
        with Vertical(id="dialog"):
            yield Label(Text(question), id="question")
            # Text objects: a run id may hold '[', which markup would eat.
            yield Label(Text(f"Stop {them} (each keeps its last checkpoint and can be resumed), or "
                             f"leave {them} running in the background and watch later with: "
                             f"{watch_hint(self.run_ids)}"), id="detail")
            with Horizontal(id="buttons"):
                yield Button("Stop (s)", id="stop", variant="error")
                yield Button("Leave running (l)", id="leave", variant="primary")
                yield Button("Cancel (esc)", id="cancel")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.action_choose("" if event.button.id == "cancel" else str(event.button.id))

    def action_choose(self, choice: str) -> None:
        self.dismiss(choice or None)
