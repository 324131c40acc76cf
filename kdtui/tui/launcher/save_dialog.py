"""The "save as preset" dialog: asks for the new preset's name, checks it as you type (the
rule of run names) and shows where the file will go. Dismissed with the name, or None.

Usage::

    app.push_screen(PresetNameScreen("quickstart_custom"), on_named)   # on_named(name | None)
"""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from kdtui.errors import KdtuiError
from kdtui.store import check_run_name
from kdtui.tui.launcher.fields import ErrorLine
from kdtui.tui.launcher.presets_io import display_path, preset_save_path


class PresetNameScreen(ModalScreen[str | None]):
    """Asks for the name of a new preset; checked as you type."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, suggested: str) -> None:
        super().__init__()
        self.suggested = suggested

    def compose(self) -> ComposeResult:
        with Vertical(id="preset-name-dialog", classes="panel dialog") as box:
            box.border_title = "Save as preset"
            yield Label("Name of the new preset:")
            yield Input(self.suggested, id="preset-name")
            yield Static("", id="preset-name-target", classes="muted")
            yield ErrorLine(classes="field-error", id="preset-name-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Save", id="save", variant="primary", compact=True)
                yield Button("Cancel", id="cancel", compact=True)

    def on_mount(self) -> None:
        self._check(self.suggested)

    @on(Input.Changed, "#preset-name")
    def _changed(self, event: Input.Changed) -> None:
        self._check(event.value)

    def _check(self, name: str) -> bool:
        try:
            check_run_name(name.strip())  # a preset name follows the rule of run names
            problem = None
        except KdtuiError as exc:
            problem = str(exc)
        self.query_one("#preset-name-error", ErrorLine).show_error(problem)
        target = "" if problem else "→ " + display_path(preset_save_path(name.strip()))
        self.query_one("#preset-name-target", Static).update(Text(target))
        self.query_one("#save", Button).disabled = problem is not None
        return problem is None

    @on(Input.Submitted, "#preset-name")
    @on(Button.Pressed, "#save")
    def _save(self) -> None:
        name = self.query_one("#preset-name", Input).value.strip()
        if self._check(name):
            self.dismiss(name)

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.dismiss(None)
