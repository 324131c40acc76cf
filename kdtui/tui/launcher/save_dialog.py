"""The "save as preset" dialog: asks for the new preset's name, checked as you type (the
rule of run names, with a preset's example) and shows where the file will go, and for its
description. Dismissed with ``(name, description)``, or None.

Usage::

    app.push_screen(PresetNameScreen("quickstart_custom", "quickstart with train.lr=0.05"), on_named)
"""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from kdtui.store import RUN_NAME
from kdtui.tui.launcher.fields import ErrorLine
from kdtui.tui.launcher.presets_io import display_path, preset_save_path


def preset_name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a preset (the rule of run names: the preset names its runs)."""
    if RUN_NAME.fullmatch(name) and ".." not in name:
        return None
    return (f"Preset name {name!r} is not allowed: use letters, digits, '.', '_', '+' and '-' (up to "
            "80 characters, starting with a letter or digit, no '..'), e.g. cifar10_amd_lr05.")


class PresetNameScreen(ModalScreen["tuple[str, str] | None"]):
    """Asks for the name and description of a new preset; the name checked as you type."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, suggested: str, description: str = "") -> None:
        super().__init__()
        self.suggested = suggested
        self.description = description

    def compose(self) -> ComposeResult:
        with Vertical(id="preset-name-dialog", classes="panel dialog") as box:
            box.border_title = "Save as preset"
            yield Label("Name of the new preset:")
            yield Input(self.suggested, id="preset-name")
            yield Static("", id="preset-name-target", classes="muted")
            yield ErrorLine(classes="field-error", id="preset-name-error")
            yield Label("Description (kdtui presets and the launcher show it):")
            yield Input(self.description, id="preset-description-input")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Save", id="save", variant="primary", compact=True)
                yield Button("Cancel", id="cancel", compact=True)

    def on_mount(self) -> None:
        self._check(self.suggested)

    @on(Input.Changed, "#preset-name")
    def _changed(self, event: Input.Changed) -> None:
        self._check(event.value)

    def _check(self, name: str) -> bool:
        problem = preset_name_problem(name.strip())
        self.query_one("#preset-name-error", ErrorLine).show_error(problem)
        target = "" if problem else "→ " + display_path(preset_save_path(name.strip()))
        self.query_one("#preset-name-target", Static).update(Text(target))
        self.query_one("#save", Button).disabled = problem is not None
        return problem is None

    @on(Input.Submitted)
    @on(Button.Pressed, "#save")
    def _save(self) -> None:
        name = self.query_one("#preset-name", Input).value.strip()
        if self._check(name):
            self.dismiss((name, self.query_one("#preset-description-input", Input).value.strip()))

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.dismiss(None)
