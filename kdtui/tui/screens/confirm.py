"""A yes/no question in a modal dialog (styled by styles/dialogs.tcss).

Usage::

    app.push_screen(ConfirmScreen("Overwrite presets/mine.yaml?"), lambda yes: ...)  # True | False
    ConfirmScreen("Delete run X?", yes="Delete", no="Keep", detail="Its folder goes for good.")
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label


class ConfirmScreen(ModalScreen[bool]):
    """Dismissed with True for yes, False for no (escape counts as no)."""

    BINDINGS = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(self, question: str, *, yes: str = "Yes", no: str = "No", detail: str = "") -> None:
        super().__init__()
        self.question = question
        self.yes_label = yes
        self.no_label = no
        self.detail = detail

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(self.question, id="question", markup=False)
            if self.detail:
                yield Label(self.detail, id="detail", markup=False)
            with Horizontal(id="buttons"):
                # "\[" keeps the key hint from being read as markup.
                yield Button(f"{self.yes_label} \\[y]", id="yes", variant="warning")
                yield Button(f"{self.no_label} \\[n]", id="no", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()  # the safe answer is the default

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.action_answer(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)
