"""The launcher's field widgets: one config value with an editor chosen by its type (a switch,
a select, checkboxes or a text input), its help and its inline error.

Usage::

    field = OptionField(spec)                # spec: a schema.FieldSpec
    field.show(0.05); field.text()           # '0.05', as written after `--set KEY=`
    field.override(baseline)                 # 'train.lr=0.05', or None when unchanged
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.suggester import SuggestFromList
from textual.widget import Widget
from textual.widgets import Checkbox, Input, Label, Select, Static, Switch

from kdtui.schema import describe_type
from kdtui.tui.launcher.schema import FieldSpec, is_optional, is_text, parse_text, same_value, yaml_text


class ErrorLine(Static):
    """An inline error under a field or section; hidden while there is none."""

    DEFAULT_CSS = """
    ErrorLine { display: none; }
    ErrorLine.-shown { display: block; }
    """
    message: str | None = None

    def show_error(self, message: str | None) -> None:
        if message != self.message:
            self.message = message
            self.update(Text(message or ""))
            self.set_class(bool(message), "-shown")


class OptionField(Vertical):
    """One config value: its name, an editor chosen by its type, its help and its inline error."""

    def __init__(self, spec: FieldSpec, *, label: bool = True, id_suffix: str = "") -> None:
        super().__init__(classes="field", id="field-" + spec.key.replace(".", "-") + id_suffix)
        self.spec = spec
        self.labelled = label
        self.editor = self._make_editor()
        self.error_line = ErrorLine(classes="field-error")

    def _make_editor(self) -> Widget:
        spec = self.spec
        if spec.hint is bool:
            return Switch(classes="field-editor")
        if spec.choices is not None:
            # Blank only where there may be nothing to choose (the finished runs).
            return Select([(c, c) for c in spec.choices], allow_blank=not spec.choices, compact=True,
                          prompt="(none)", classes="field-editor")
        if spec.item_choices is not None:
            return Horizontal(*(Checkbox(c, compact=True) for c in spec.item_choices),
                              classes="field-editor field-checks")
        suggester = SuggestFromList(spec.suggestions, case_sensitive=True) if spec.suggestions else None
        placeholder = "(not set)" if is_optional(spec.hint) else describe_type(spec.hint)
        return Input(placeholder=placeholder, compact=True, suggester=suggester,
                     select_on_focus=False, classes="field-editor")

    def compose(self) -> ComposeResult:
        with Horizontal(classes="field-row"):
            if self.labelled:
                yield Label(self.spec.name, classes="field-label", markup=False).with_tooltip(Text(self.spec.help))
            yield self.editor
            yield Label(self.spec.help, classes="field-help", markup=False)
        yield self.error_line

    def set_choices(self, choices: tuple[str, ...], labels: dict[str, str] | None = None) -> None:
        assert isinstance(self.editor, Select)
        self.spec.choices = choices
        self.editor.set_options([((labels or {}).get(c, c), c) for c in choices])

    def show(self, value: Any) -> None:
        """Put ``value`` (a resolved config value) into the editor."""
        editor = self.editor
        if isinstance(editor, Switch):
            editor.value = bool(value)
        elif isinstance(editor, Select):
            if str(value) not in (self.spec.choices or ()):
                # A preset may name something unregistered: show it, and let the validator say why.
                self.set_choices((*(self.spec.choices or ()), str(value)))
            editor.value = str(value)
        elif isinstance(editor, Input):
            if value is None:
                editor.value = ""
            elif is_text(self.spec.hint):
                editor.value = str(value)
            else:
                editor.value = yaml_text(value)
        else:
            chosen = {str(item) for item in value or ()}
            for box in editor.query(Checkbox):
                box.value = str(box.label) in chosen

    def text(self) -> str:
        """The value as written after ``--set KEY=``."""
        editor = self.editor
        if isinstance(editor, Switch):
            return yaml_text(editor.value)
        if isinstance(editor, Select):
            return "" if editor.is_blank() else yaml_text(str(editor.value))
        if isinstance(editor, Input):
            typed = editor.value.strip()
            if not typed:
                return "null" if is_optional(self.spec.hint) else ("''" if is_text(self.spec.hint) else "")
            return yaml_text(typed) if is_text(self.spec.hint) else typed
        return yaml_text([str(box.label) for box in editor.query(Checkbox) if box.value])

    def value(self) -> Any:
        """The edited value, as the validator will read it."""
        editor = self.editor
        if isinstance(editor, Switch):
            return editor.value
        if isinstance(editor, Select):
            return None if editor.is_blank() else str(editor.value)
        if isinstance(editor, Input):
            return parse_text(self.text())
        return [str(box.label) for box in editor.query(Checkbox) if box.value]

    def differs(self, baseline: Any) -> bool:
        return not same_value(self.value(), baseline, unordered=self.spec.item_choices is not None)

    def override(self, baseline: Any) -> str | None:
        """``KEY=VALUE`` when the edited value differs from ``baseline``, else None."""
        return f"{self.spec.key}={self.text()}" if self.differs(baseline) else None
