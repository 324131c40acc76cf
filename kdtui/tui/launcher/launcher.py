"""The run launcher: pick a preset, change anything, then start it or save it as a new preset.

Every field is generated from the config schema (the sections' dataclasses and each registered
loss's ``Options``), so a new option or loss appears here without touching this package. Each
change builds the ``--set KEY=VALUE`` overrides that differ from the preset and validates them
with :func:`kdtui.config.load_config`, the CLI's validator: the inline messages are the CLI's,
and what the form shows is exactly the command line it prints.

The form is shown before PyTorch is imported: the data, teacher, student and training fields
come from the config dataclasses and the presets (no PyTorch), so they can be read and
edited within a second of ``kdtui``; a worker then imports the loss and model registries,
adds the loss editors, and from then on each change is validated (until then Start waits,
and the parameter preview fills in when the models can be counted).

The launcher posts :class:`Launcher.StartRun` to start a run (the screen holding it starts the
run) and :class:`Launcher.Validated` after each validation.

Usage::

    yield Launcher(id="launcher")            # in a screen's compose
    launcher.run_args()                      # ['quickstart', '--set', 'train.lr=0.05']
    launcher.start()                         # posts Launcher.StartRun(launcher.run_args())
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.suggester import SuggestFromList
from textual.widget import Widget
from textual.widgets import Button, Checkbox, Collapsible, Input, Label, LoadingIndicator, Select, Static, Switch
from textual.worker import get_current_worker

from kdtui.config import load_config, read_yaml_mapping
from kdtui.errors import KdtuiError
from kdtui.presets import grouped_presets, presets_dir
from kdtui.tui.launcher.editors import LossEditor, TeacherEditor
from kdtui.tui.launcher.fields import ErrorLine, OptionField
from kdtui.tui.launcher.picker import PresetPicker
from kdtui.tui.launcher.study_start import confirm_study, is_study_file, study_outline
from kdtui.tui.launcher.presets_io import (default_description, display_path, preset_reference, preset_save_path,
                                          write_preset)
from kdtui.tui.launcher.save_dialog import PresetNameScreen
from kdtui.tui.launcher.schema import (FormSchema, LossSpec, PresetGroups, error_key, head_classes, load_base_schema,
                                       load_loss_specs, lookup, parameter_count, resolve_sections, teacher_arch_of,
                                       teacher_dataset_of, teacher_mismatch)
from kdtui.store import RunRow


def section(title: str, *children: Widget, id: str) -> Vertical:
    box = Vertical(*children, classes="panel launcher-section", id=id)
    box.border_title = title
    return box


class Launcher(Vertical):
    """The launcher form, its validation status, the equivalent command line and its buttons."""

    class Validated(Message):
        """Posted after each validation, so the screen can refresh what depends on it (``valid``)."""

    class StartRun(Message):
        """Start ``kdtui run <args> --headless`` (the arguments without ``--headless``) and watch it."""

        def __init__(self, args: list[str]) -> None:
            super().__init__()
            self.args = args

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.shown = False   # the form is there (no PyTorch needed)…
        self.ready = False   # …and the loss editors too: the form validates
        self.preset_path: Path | None = None
        self.preset_raw: dict[str, Any] = {}  # the preset file's mapping, read once per preset
        self.resolved: dict[str, Any] = {}
        self.error: str | None = "Loading…"
        self.presets: PresetGroups | None = None  # read once, off the event loop, with the registries
        self.params_pending = False
        self.data_fields: list[OptionField] = []
        self.teacher: TeacherEditor | None = None
        self.student_field: OptionField | None = None
        self.losses: list[LossEditor] = []
        self.train_fields: list[OptionField] = []
        self.loss_error = ErrorLine(classes="field-error")  # "loss: every loss weight is zero…"
        self.finished: list[RunRow] = []
        self._validation_scheduled = False
        self._parameter_counts: dict[tuple[str, int], int | None] = {}

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="launcher-form"):
            with Horizontal(id="preset-row"):
                yield Label("preset", classes="field-label")
                yield Button("…", id="pick-preset", compact=True).with_tooltip("choose a preset (ctrl+o)")
                yield Label("", id="preset-description", classes="field-help")
            with Vertical(id="launcher-loading"):
                yield LoadingIndicator()
                yield Static("Reading the presets…", classes="muted")
        with Vertical(id="launcher-actions"):
            yield Static("", id="launcher-status")
            yield Static("", id="launcher-command")
            with Horizontal(id="launcher-buttons"):
                yield Button("Start ^r", id="start", variant="success", compact=True, disabled=True)
                yield Button("Save as preset ^s", id="save-preset", compact=True, disabled=True)
                yield Button("Copy command", id="copy-command", compact=True, disabled=True)

    def on_mount(self) -> None:
        self._load_schema()

    @work(thread=True, group="launcher-schema")
    def _load_schema(self) -> None:
        # The form first (no PyTorch), then the losses (importing PyTorch takes seconds).
        self.app.call_from_thread(self._build_form, load_base_schema())
        losses, architectures = load_loss_specs()
        self.app.call_from_thread(self._add_losses, losses, architectures)

    async def _build_form(self, schema: FormSchema) -> None:
        data = [OptionField(spec) for spec in schema.data]
        data_more = [OptionField(spec) for spec in schema.data_more]
        train = [OptionField(spec) for spec in schema.train]
        train_more = [OptionField(spec) for spec in schema.train_more]
        self.data_fields, self.train_fields = data + data_more, train + train_more
        self.student_field = OptionField(schema.student)
        self.teacher = TeacherEditor(schema.teacher)
        await self.query_one("#launcher-loading").remove()
        loading = Vertical(LoadingIndicator(), Static("Loading the loss methods and networks (this imports "
                                                      "PyTorch)…", classes="muted"), id="losses-loading")
        await self.query_one("#launcher-form", VerticalScroll).mount_all([
            section("Data", *data, Collapsible(*data_more, title="more data options"), id="section-data"),
            section("Teacher", self.teacher, id="section-teacher"),
            section("Student", self.student_field, Static("", id="parameter-counts", classes="muted"),
                    id="section-student"),
            section("Loss mix", self.loss_error, loading, id="section-loss"),
            section("Training", *train, Collapsible(*train_more, title="more training options"),
                    id="section-train"),
        ])
        self.query_one("#copy-command", Button).disabled = False
        self.teacher.set_finished_runs(self.finished)
        self.presets = schema.presets
        self.shown = True
        if not any(self._try_preset(preset.path) for _, presets in schema.presets for preset in presets):
            self._show_status(f"No preset loads: choose one (ctrl+o), or add one to {display_path(presets_dir())}.",
                              error=True)
        self._schedule_validation()
        self._request_parameter_counts()

    async def _add_losses(self, losses: list[LossSpec], architectures: tuple[str, ...]) -> None:
        """The loss editors, once PyTorch has loaded; what was edited meanwhile is kept."""
        assert self.teacher is not None and self.student_field is not None
        self.losses = [LossEditor(spec) for spec in losses]
        await self.query_one("#losses-loading").remove()
        await self.query_one("#section-loss").mount_all(self.losses)
        for field in (self.student_field, self.teacher.arch):
            field.spec.suggestions = architectures
            if isinstance(field.editor, Input):
                field.editor.suggester = SuggestFromList(architectures, case_sensitive=True)
        self.ready = True
        if self.preset_path is not None:
            try:
                full = load_config(data=self.preset_raw).to_dict()
            except KdtuiError:
                full = {**self.resolved, "loss": {}}  # its validation says why
            for field in self.fields:  # a value resolved differently, unless edited meanwhile
                if not field.differs(lookup(self.resolved, field.spec.key)):
                    field.show(lookup(full, field.spec.key))
            if not self.teacher.overrides():
                self.teacher.load(full.get("teacher"))
            for editor in self.losses:
                editor.load(full["loss"].get(editor.spec.name))
            self.resolved = full
        self.query_one("#save-preset", Button).disabled = False
        self._schedule_validation()
        self._request_parameter_counts()

    @property
    def fields(self) -> list[OptionField]:
        """The data, student and training fields (the teacher and losses have editors of their own)."""
        return [*self.data_fields, *([self.student_field] if self.student_field else []), *self.train_fields]

    def _try_preset(self, path: Path) -> bool:
        try:
            self._apply_preset(path)
        except KdtuiError:
            return False
        return True

    # --- presets --------------------------------------------------------------------------

    def load_preset(self, path: Path) -> None:
        """Show ``path``'s values in every field; a preset that does not load is reported, not shown."""
        try:
            self._apply_preset(path)
        except KdtuiError as exc:
            self.notify(str(exc), title="Cannot use this preset", severity="error", timeout=10)
            return
        self._schedule_validation()
        self._request_parameter_counts()

    def _apply_preset(self, path: Path) -> None:
        raw = read_yaml_mapping(path)
        raw.setdefault("preset", path.stem)  # what load_config(path) does
        # Before the loss registry has loaded, every section but the losses (no PyTorch).
        resolved = load_config(data=raw).to_dict() if self.ready else resolve_sections(raw)
        assert self.teacher is not None
        self.preset_path, self.preset_raw, self.resolved = path, raw, resolved
        self.query_one("#pick-preset", Button).label = Text(preset_reference(path) + " ▾")
        self.query_one("#preset-description", Label).update(Text(resolved.get("description") or ""))
        for field in self.fields:
            field.show(lookup(resolved, field.spec.key))
        self.teacher.load(resolved.get("teacher"))
        for editor in self.losses:
            editor.load(resolved["loss"].get(editor.spec.name))

    def pick_preset(self) -> None:
        current = self.preset_path.stem if self.preset_path else None
        self.app.push_screen(PresetPicker(current, self.presets), self._preset_picked)

    def _preset_picked(self, path: Path | None) -> None:
        if path is not None and self.shown:
            if is_study_file(path):   # a study is started (after a question), not edited
                self._check_study(path)
            else:
                self.load_preset(path)

    @work(thread=True, exclusive=True, group="launcher-study", exit_on_error=False)
    def _check_study(self, path: Path) -> None:
        outline = study_outline(path)   # every point validated, as the sweep will
        self.app.call_from_thread(confirm_study, self, path, outline)

    def set_finished_runs(self, rows: list[RunRow]) -> None:
        """The finished runs a teacher can be chosen from (the screen loads them)."""
        self.finished = [row for row in rows if row.status == "finished"]
        if self.teacher is not None and self.shown:  # else the form, when built, takes them
            self.teacher.set_finished_runs(self.finished)

    # --- overrides and validation ----------------------------------------------------------

    def overrides(self) -> list[str]:
        """``KEY=VALUE`` for every value that differs from the preset, in form order."""
        if not self.shown or self.teacher is None or self.student_field is None:
            return []

        def changed(fields: list[OptionField]) -> list[str]:
            return [text for field in fields if (text := field.override(lookup(self.resolved, field.spec.key)))]

        found = changed(self.data_fields) + self.teacher.overrides() + changed([self.student_field])
        for editor in self.losses:
            found += editor.overrides()
        return found + changed(self.train_fields)

    def run_args(self, overrides: list[str] | None = None) -> list[str]:
        """The arguments of ``kdtui run`` (without ``--headless``) for what the form shows."""
        assert self.preset_path is not None
        overrides = self.overrides() if overrides is None else overrides
        return [preset_reference(self.preset_path), *(part for text in overrides for part in ("--set", text))]

    def command_line(self, overrides: list[str] | None = None) -> str:
        return "kdtui run " + shlex.join([*self.run_args(overrides), "--headless"])

    @property
    def valid(self) -> bool:
        return self.ready and self.preset_path is not None and self.error is None

    @on(Input.Changed)
    @on(Select.Changed)
    @on(Switch.Changed)
    @on(Checkbox.Changed)
    def _form_changed(self) -> None:
        self._schedule_validation()

    @on(Input.Changed, "#field-student-arch Input, #field-teacher-preset Input, #field-teacher-arch Input")
    @on(Select.Changed, "#teacher-source, #field-data-dataset Select, #field-teacher-checkpoint-run Select")
    def _architecture_changed(self) -> None:
        self._request_parameter_counts()

    @property
    def validation_pending(self) -> bool:
        return self._validation_scheduled

    def _schedule_validation(self) -> None:
        # One validation per burst of changes (loading a preset changes every field at once).
        if not self._validation_scheduled:
            self._validation_scheduled = True
            self.call_later(self.validate)

    def validate(self) -> None:
        """Validate the form with the CLI's validator and show the outcome."""
        self._validation_scheduled = False
        if not self.shown or self.preset_path is None:
            return
        overrides = self.overrides()
        if not self.ready:  # the validator needs the loss registry (PyTorch): soon
            self.error = "The form is checked once PyTorch has loaded (a few seconds)."
            self._show_status("… " + self.error)
            self.query_one("#launcher-command", Static).update(Text("$ " + self.command_line(overrides)))
            self.post_message(self.Validated())
            return
        try:
            # load_config(preset_path, overrides) without re-reading the file on every key
            # press: parsing the YAML was about two thirds of the time.
            cfg = load_config(data=self.preset_raw, overrides=overrides)
            self.error = self._teacher_problem(cfg)
        except KdtuiError as exc:
            self.error = str(exc)
        self._show_errors(overrides)
        if self.error is None:
            changes = len(overrides)
            self._show_status(f"✓ Valid: {changes} change{'' if changes == 1 else 's'} from the preset.")
        else:
            self._show_status("✗ " + self.error, error=True)
        self.query_one("#launcher-command", Static).update(Text("$ " + self.command_line(overrides)))
        for button in ("#start", "#save-preset"):
            self.query_one(button, Button).disabled = not self.valid
        self.post_message(self.Validated())

    def _teacher_problem(self, cfg: Any) -> str | None:
        """A teacher whose classes differ from the dataset's: the run would fail as it starts."""
        teacher = self.teacher
        needs = {spec.name for spec in (editor.spec for editor in self.losses) if spec.needs_teacher}
        if teacher is None or cfg.teacher is None or not needs & set(cfg.active_losses):
            return None
        preset = str(teacher.preset.editor.value).strip()
        dataset = teacher_dataset_of(teacher.source, preset, teacher.run_id, self.finished)
        return teacher_mismatch(cfg.data.dataset, dataset, teacher.source, preset, teacher.run_id)

    def _error_lines(self) -> dict[str, ErrorLine]:
        assert self.teacher is not None
        lines = {field.spec.key: field.error_line for field in self.fields}
        lines.update(self.teacher.error_lines())
        for editor in self.losses:
            lines.update(editor.error_lines())
        lines["loss"] = self.loss_error
        return lines

    def _show_errors(self, overrides: list[str]) -> None:
        lines = self._error_lines()
        for line in self.query(ErrorLine):
            line.show_error(None)
        key = error_key(self.error, overrides, lines) if self.error is not None else None
        if key is not None:
            lines[key].show_error(self.error)
            for collapsible in lines[key].ancestors_with_self:
                if isinstance(collapsible, Collapsible):
                    collapsible.collapsed = False  # never hide the field that needs fixing

    def field_error(self, key: str) -> str | None:
        """The inline error shown at the field of ``key`` (for tests and the screen)."""
        line = self._error_lines().get(key)
        return line.message if line is not None else None

    def _show_status(self, text: str, error: bool = False) -> None:
        status = self.query_one("#launcher-status", Static)
        status.update(Text(text))
        status.set_class(error, "error")

    # --- parameter counts ------------------------------------------------------------------

    def _request_parameter_counts(self) -> None:
        if not self.shown or self.teacher is None:
            return
        assert self.student_field is not None
        student = self.student_field.editor.value.strip()
        teacher = self.teacher
        dataset = str(self.field("data.dataset").editor.value)
        self.params_pending = True
        classes, known = head_classes(dataset)
        self._count_parameters(student, teacher.source, teacher.preset.editor.value.strip(),
                               teacher.run_id, teacher.arch.editor.value.strip(), classes, known)

    @work(thread=True, exclusive=True, group="launcher-parameters")
    def _count_parameters(self, student: str, source: str, preset: str, run_id: str, arch: str,
                          classes: int, known: bool) -> None:
        teacher = teacher_arch_of(source, preset, run_id, arch, self.finished)
        counts = {}
        for name in filter(None, (student, teacher)):
            if (name, classes) not in self._parameter_counts:
                self._parameter_counts[(name, classes)] = parameter_count(name, classes)
            counts[name] = self._parameter_counts[(name, classes)]
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self._show_parameter_counts, student, teacher, counts, classes, known)

    def _show_parameter_counts(self, student: str, teacher: str | None, counts: dict[str, int | None],
                               classes: int, known: bool) -> None:
        def count(arch: str | None) -> str:
            found = counts.get(arch or "")
            return f"{found:,}" if found else "?"

        parts = [f"params: student {count(student)}"]
        if self.teacher is not None and self.teacher.source != "none":
            parts.append(f"teacher {teacher or '?'} {count(teacher)}")
            if teacher and counts.get(teacher) and counts.get(student):
                parts.append(f"compression {counts[teacher] / counts[student]:.1f}×")
        # A dataset whose classes only its folders know: say which head the counts assume.
        text = " · ".join(parts) + (f" ({classes}-class head)" if known
                                    else f" (assuming a {classes}-class head; the data sets the real one)")
        self.query_one("#parameter-counts", Static).update(Text(text))
        self.params_pending = False

    def field(self, key: str) -> OptionField:
        return next(field for field in self.fields if field.spec.key == key)

    # --- actions ---------------------------------------------------------------------------

    def start(self) -> None:
        if self.valid:
            self.post_message(self.StartRun(self.run_args()))
        else:
            self.notify(self.error or "The form is still loading.", title="Cannot start", severity="error")

    def copy_command(self) -> None:
        if self.preset_path is not None:
            self.app.copy_to_clipboard(self.command_line())
            self.notify("Copied the command line.")

    def save_as_preset(self) -> None:
        if not self.valid or self.preset_path is None:
            self.notify(self.error or "The form is still loading.", title="Cannot save", severity="error")
            return
        description = default_description(self.preset_path, self.overrides(),
                                          str(self.resolved.get("description") or ""))
        self._ask_name(f"{self.preset_path.stem}_custom", description)

    def _ask_name(self, name: str, description: str) -> None:
        self.app.push_screen(PresetNameScreen(name, description), self._save_named)

    def _save_named(self, named: tuple[str, str] | None) -> None:
        if named is None:
            return
        name, description = named
        target = preset_save_path(name)
        if not target.exists():
            self._save_to(target, description)
            return
        from kdtui.tui.screens.confirm import ConfirmScreen

        # "No" goes back to the name, to choose another one.
        self.app.push_screen(ConfirmScreen(f"{display_path(target)} exists. Overwrite it?",
                                           no="Choose another name"),
                             lambda yes: self._save_to(target, description) if yes else self._ask_name(name, description))

    def _save_to(self, target: Path, description: str | None = None) -> None:
        assert self.preset_path is not None
        try:
            write_preset(self.preset_path, self.overrides(), target, description)
        except (OSError, KdtuiError) as exc:
            self.notify(str(exc), title="Cannot save the preset", severity="error", timeout=10)
            return
        self.notify(f"Saved {display_path(target)}.", title="Preset saved")
        # Like "save as" in an editor, the form now edits the new preset (same values, no overrides).
        self.load_preset(target)
        self._reload_presets()  # so that the picker lists the new one

    @work(thread=True, exclusive=True, group="launcher-presets", exit_on_error=False)
    def _reload_presets(self) -> None:
        presets = grouped_presets()
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self._set_presets, presets)

    def _set_presets(self, presets: PresetGroups) -> None:
        self.presets = presets

    @on(Button.Pressed, "#pick-preset")
    def _pick_pressed(self) -> None:
        self.pick_preset()

    @on(Button.Pressed, "#start")
    def _start_pressed(self) -> None:
        self.start()

    @on(Button.Pressed, "#save-preset")
    def _save_pressed(self) -> None:
        self.save_as_preset()

    @on(Button.Pressed, "#copy-command")
    def _copy_pressed(self) -> None:
        self.copy_command()

