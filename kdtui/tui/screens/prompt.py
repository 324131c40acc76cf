"""A one-line text question in a modal dialog: the runs viewer's tag, note, rename and
config-column prompts (styled by styles/dialogs.tcss).

Usage::

    app.push_screen(PromptScreen("Rename run X", value="x", detail="…"), lambda text: ...)
    # text: what was typed (Enter), or None (Esc)
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label


class PromptScreen(ModalScreen[str | None]):
    """Dismissed with the text typed on Enter, or None on Esc."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, question: str, *, value: str = "", detail: str = "", placeholder: str = "") -> None:
        super().__init__()
        self.question = question
        self.value = value
        self.detail = detail
        self.placeholder = placeholder

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(self.question, id="question", markup=False)
            if self.detail:
                yield Label(self.detail, id="detail", markup=False)
            # The cursor at the end, nothing selected: a key edits the value, never replaces it.
            yield Input(self.value, placeholder=self.placeholder, id="prompt-input", select_on_focus=False)
            yield Label("Enter: save · Esc: cancel", id="prompt-keys")

    def on_mount(self) -> None:
        self.query_one("#prompt-input", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)
