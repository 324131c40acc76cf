"""Asked when ``s`` is pressed in the middle of an epoch: stopping now abandons the steps
done in it (the run resumes after the previous epoch); stopping at the end of the epoch
lets it finish and be checkpointed first.

Usage::

    app.push_screen(StopScreen(epoch=3, step=50, steps=75), on_choice)  # "now" | "epoch" | None
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label


class StopScreen(ModalScreen[str | None]):
    BINDINGS = [
        Binding("escape", "choose('')", "Cancel"),
        Binding("s", "choose('now')", "Stop now"),
        Binding("e", "choose('epoch')", "Stop at the end of the epoch"),
    ]

    def __init__(self, epoch: int, step: int, steps: int) -> None:
        super().__init__()
        self.epoch, self.step, self.steps = epoch, step, steps

    def compose(self) -> ComposeResult:
        kept = (f"the checkpoint of epoch {self.epoch - 1}" if self.epoch > 1
                else "no checkpoint (none is written before epoch 1 ends)")
        with Vertical(id="dialog"):
            yield Label(Text(f"Epoch {self.epoch} is at step {self.step} of {self.steps}."), id="question")
            yield Label(Text(f"Stop now and those {self.step} steps are discarded: the run keeps {kept}. "
                             f"Or let epoch {self.epoch} finish, be checkpointed, then stop."), id="detail")
            with Horizontal(id="buttons"):
                yield Button("Stop now (s)", id="now", variant="error")
                yield Button(f"At the end of epoch {self.epoch} (e)", id="epoch", variant="primary")
                yield Button("Cancel (esc)", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#epoch", Button).focus()  # the answer that loses nothing

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.action_choose("" if event.button.id == "cancel" else str(event.button.id))

    def action_choose(self, choice: str) -> None:
        self.dismiss(choice or None)
