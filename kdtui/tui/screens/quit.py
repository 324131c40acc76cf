"""Asked when quitting while a run trains: stop it, or leave it running in the background.

Usage::

    app.push_screen(QuitScreen("20261128-101500-quickstart"), on_choice)  # "stop" | "leave" | None
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label


class QuitScreen(ModalScreen[str | None]):
    BINDINGS = [
        Binding("escape", "choose('')", "Cancel"),
        Binding("s", "choose('stop')", "Stop the run"),
        Binding("l", "choose('leave')", "Leave it running"),
    ]

    def __init__(self, run_id: str | None) -> None:
        super().__init__()
        self.run_id = run_id

    def compose(self) -> ComposeResult:
        watch = f"kdtui watch {self.run_id}" if self.run_id else "kdtui runs"
        with Vertical(id="dialog"):
            yield Label("A run is still training.", id="question")
            yield Label(f"Stop it (it keeps its last checkpoint and can be resumed), or leave "
                        f"it running in the background and watch it later with `{watch}`.",
                        id="detail")
            with Horizontal(id="buttons"):
                yield Button("Stop the run (s)", id="stop", variant="error")
                yield Button("Leave it running (l)", id="leave", variant="primary")
                yield Button("Cancel (esc)", id="cancel")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.action_choose("" if event.button.id == "cancel" else str(event.button.id))

    def action_choose(self, choice: str) -> None:
        self.dismiss(choice or None)
