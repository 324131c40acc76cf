"""The run launcher: pick a preset, change anything, then start it or save it as a new preset.

Every field is generated from the config schema (the sections' dataclasses and each registered
loss's ``Options``), so a new option or loss appears here without touching this file. Each
change builds the ``--set KEY=VALUE`` overrides that differ from the preset and validates them
with :func:`kdtui.config.load_config`, the CLI's validator: the inline messages are the CLI's,
and what the form shows is exactly the command line it prints.

Usage::

    yield Launcher(id="launcher")            # in a screen's compose
    launcher.run_args()                      # ['quickstart', '--set', 'train.lr=0.05']
    launcher.start()                         # app.start_run(launcher.run_args())
"""

from __future__ import annotations

import dataclasses
import functools
import os
import shlex
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import yaml
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.suggester import SuggestFromList
from textual.widget import Widget
from textual.widgets import (Button, Checkbox, Collapsible, Input, Label, LoadingIndicator, OptionList,
                             Select, Static, Switch)
from textual.widgets.option_list import Option
from textual.worker import Worker, WorkerState, get_current_worker

from kdtui.config import (DataConfig, StudentConfig, TeacherConfig, TrainConfig, apply_override, load_config,
                          parse_override, read_yaml_mapping)
from kdtui.errors import KdtuiError
from kdtui.presets import PresetInfo, find_preset, grouped_presets, presets_dir
from kdtui.schema import describe_type
from kdtui.store import RUN_ID, check_run_name
from kdtui.store import RunRow

# The fields shown up front; the sections' other fields go under "more … options".
DATA_MAIN = ("dataset", "root")
TRAIN_MAIN = ("optimizer", "lr", "schedule", "milestones", "weight_decay", "epochs", "batch_size",
              "seed", "device")
DEVICE_SUGGESTIONS = ("auto", "cpu", "cuda", "cuda:0", "cuda:1", "mps")
# Classes of the classifier head the parameter counts assume; 10 for anything not listed.
# A table because the dataset registry (kdtui.data.DATASETS) maps a name to a builder and
# nothing else: the class count is only known once a builder has loaded the data (CIFAR's from
# torchvision's class list, the folder datasets' from the class folders on disk), which needs
# the files and takes seconds. These are the counts of the standard releases; "imagefolder" has
# whatever classes its folders hold, so its count here (10) is a guess, and the label under the
# student says which head was assumed. Keep in step with kdtui/data when adding a dataset.
HEAD_CLASSES = {"cifar100": 100, "tiny_imagenet": 200, "imagenet": 1000}
TEACHER_SOURCES = (("none: no teacher", "none"), ("auto: newest finished run of a preset", "auto"),
                   ("a finished run", "run"), ("a checkpoint file", "path"))
UNPARSABLE = object()  # a typed value YAML cannot read: differs from everything


# --- values as written after `--set KEY=` ------------------------------------------------


def yaml_text(value: Any) -> str:
    """A value in the YAML flow style ``--set`` reads back to the same value: 0.05, [40, 80], 'yes'."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        text = repr(value)
        # YAML 1.1 reads 1e-05 as a string: it needs the dot, 1.0e-05.
        if "e" in text and "." not in text:
            mantissa, exponent = text.split("e")
            text = f"{mantissa}.0e{exponent}"
        return text
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(yaml_text(item) for item in value) + "]"
    if isinstance(value, str):
        try:  # plain when YAML reads it back as this string; a comma would split a [..] list item
            plain = yaml.safe_load(value) == value and "," not in value
        except yaml.YAMLError:
            plain = False
        return value if plain and value else "'" + value.replace("'", "''") + "'"
    return str(value)


@functools.lru_cache(maxsize=4096)  # PyYAML is slow and every validation compares every field
def parse_text(text: str) -> Any:
    """What ``--set KEY=text`` sets (as :func:`kdtui.config.parse_override` reads it); do not mutate."""
    try:
        return yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError:
        return UNPARSABLE


def same_value(typed: Any, baseline: Any, unordered: bool = False) -> bool:
    """Whether a typed value is the preset's, as the validator would see them."""
    if typed is UNPARSABLE:
        return False
    if isinstance(baseline, float) and isinstance(typed, str):
        try:  # the validator reads "1e-4" (a YAML string) as a number too
            typed = float(typed)
        except ValueError:
            return False
    if unordered and isinstance(typed, list) and isinstance(baseline, list):
        return sorted(map(str, typed)) == sorted(map(str, baseline))
    if isinstance(typed, bool) or isinstance(baseline, bool):
        return typed is baseline  # 1 == True in Python, not in the schema
    return typed == baseline


def lookup(mapping: Any, key: str) -> Any:
    for part in key.split("."):
        mapping = mapping.get(part) if isinstance(mapping, dict) else None
    return mapping


def is_optional(hint: Any) -> bool:
    return type(None) in typing.get_args(hint)


def is_text(hint: Any) -> bool:
    """A string field (``str`` or ``str | None``): what is typed is the value, quoted as needed."""
    return hint is str or (is_optional(hint) and str in typing.get_args(hint))


def display_path(path: Path) -> str:
    """``path`` relative to the current directory when inside it, else absolute."""
    absolute = Path(path).absolute()
    try:
        return str(absolute.relative_to(Path.cwd()))
    except ValueError:
        return str(absolute)


def preset_reference(path: Path) -> str:
    """What ``kdtui run`` is given: the name of a preset in the presets folder, else its path."""
    if path.parent.resolve() == presets_dir().resolve():
        return path.stem
    return display_path(path)


# --- the schema the form is generated from ------------------------------------------------


@dataclass
class FieldSpec:
    """One config value the form edits: its dotted key, type, help and editor hints."""

    key: str
    hint: Any
    help: str
    choices: tuple[str, ...] | None = None       # a Select over these
    item_choices: tuple[str, ...] | None = None  # a list of these: one checkbox each
    suggestions: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.key.rsplit(".", 1)[-1]


def field_specs(cls: type, section: str, names: Iterable[str] | None = None, *, exclude: Iterable[str] = (),
                choices: dict[str, tuple[str, ...]] | None = None,
                suggestions: dict[str, tuple[str, ...]] | None = None) -> list[FieldSpec]:
    """Specs of a dataclass's fields, in ``names`` order (default: declaration order)."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    order = list(names) if names is not None else list(fields)
    specs = []
    for name in order:
        if name in exclude:
            continue
        meta, hint, key = fields[name].metadata, hints[name], f"{section}.{name}"
        spec = FieldSpec(key, hint, meta.get("help", ""), suggestions=(suggestions or {}).get(key, ()))
        listed = meta.get("choices")
        if listed is not None and typing.get_origin(hint) is list:
            spec.item_choices = tuple(map(str, listed))
        elif listed is not None:
            spec.choices = tuple(map(str, listed))
        elif choices and key in choices:
            spec.choices = choices[key]
        specs.append(spec)
    return specs


@dataclass
class LossSpec:
    name: str
    needs_teacher: bool
    defaults: dict[str, Any]  # its Options() as a mapping: what a preset without it would use
    fields: list[FieldSpec]   # weight first


# The presets as (group, presets) pairs, as kdtui.presets.grouped_presets() gives them.
PresetGroups = list[tuple[str, list[PresetInfo]]]


@dataclass
class FormSchema:
    presets: PresetGroups  # read with the registries: parsing every preset file takes a while
    data: list[FieldSpec]
    data_more: list[FieldSpec]
    teacher: dict[str, FieldSpec]
    student: FieldSpec
    losses: list[LossSpec]
    train: list[FieldSpec]
    train_more: list[FieldSpec]


def load_form_schema() -> FormSchema:
    """Read the registries and the presets (this imports PyTorch: seconds, so call it from a thread)."""
    from kdtui.data import DATASETS
    from kdtui.engine.optim import OPTIMIZERS, SCHEDULES
    from kdtui.losses import LOSSES
    from kdtui.models import MODELS

    presets = grouped_presets()
    architectures = tuple(MODELS.names())
    choices = {"data.dataset": tuple(DATASETS.names()), "train.optimizer": tuple(OPTIMIZERS.names()),
               "train.schedule": tuple(SCHEDULES.names())}
    suggestions = {"student.arch": architectures, "teacher.arch": architectures,
                   "teacher.preset": tuple(p.name for _, group in presets for p in group),
                   "train.device": DEVICE_SUGGESTIONS}
    losses = []
    for name in LOSSES.names():
        method = LOSSES.get(name)
        fields = field_specs(method.Options, f"loss.{name}", suggestions=suggestions)
        fields.sort(key=lambda spec: spec.name != "weight")
        losses.append(LossSpec(name, method.needs_teacher, dataclasses.asdict(method.Options()), fields))
    # Losses that work alone (cross-entropy) first, then the distillation terms.
    losses.sort(key=lambda spec: spec.needs_teacher)
    return FormSchema(
        presets=presets,
        data=field_specs(DataConfig, "data", DATA_MAIN, choices=choices),
        data_more=field_specs(DataConfig, "data", exclude=DATA_MAIN, choices=choices),
        teacher={spec.name: spec for spec in field_specs(TeacherConfig, "teacher", suggestions=suggestions)},
        student=field_specs(StudentConfig, "student", suggestions=suggestions)[0],
        losses=losses,
        train=field_specs(TrainConfig, "train", TRAIN_MAIN, choices=choices, suggestions=suggestions),
        train_more=field_specs(TrainConfig, "train", exclude=TRAIN_MAIN, choices=choices),
    )


def parameter_count(arch: str, classes: int) -> int | None:
    """Parameters of ``arch`` built on the meta device (shapes only, nothing allocated)."""
    import torch

    from kdtui.models import MODELS, build_model, count_parameters

    if arch not in MODELS:
        return None
    try:
        with torch.device("meta"):
            return count_parameters(build_model(arch, classes))
    except (KdtuiError, ValueError, TypeError):
        return None


def teacher_arch_of(source: str, preset: str, run_id: str, arch: str, finished: list[RunRow]) -> str | None:
    """The teacher's architecture: given, else the teacher preset's or the teacher run's student."""
    if arch or source in ("none", "path"):
        return arch or None
    if source == "run":
        return next((row.student for row in finished if row.id == run_id), None)
    try:
        raw = read_yaml_mapping(find_preset(preset))
    except KdtuiError:
        return None
    found = lookup(raw, "student.arch")
    return str(found) if found else None


# --- saving a preset ----------------------------------------------------------------------


def preset_save_path(name: str) -> Path:
    """``<presets folder>/<name>.yaml``, or ``./<name>.yaml`` when that folder is not writable."""
    folder = presets_dir()
    if folder.is_dir() and os.access(folder, os.W_OK):
        return folder / f"{name}.yaml"
    return Path.cwd() / f"{name}.yaml"


def preset_mapping(source: Path, overrides: Iterable[str], name: str) -> dict[str, Any]:
    """The preset file's mapping with the overrides applied, named ``name``."""
    from kdtui.config import expand_loss_shorthand

    raw = read_yaml_mapping(source)
    expand_loss_shorthand(raw)  # so loss.kd.temperature=2 applies to `kd: 0.9` too, as with --set
    for text in overrides:
        apply_override(raw, *parse_override(text))
    return {"preset": name, **{key: value for key, value in raw.items() if key != "preset"}}


def write_preset(source: Path, overrides: Iterable[str], target: Path) -> None:
    mapping = preset_mapping(source, overrides, target.stem)
    target.write_text(yaml.safe_dump(mapping, sort_keys=False, allow_unicode=True), encoding="utf-8")


# --- widgets ------------------------------------------------------------------------------


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


class LossEditor(Vertical):
    """One registered loss: an on/off switch and its weight; its other options while on."""

    def __init__(self, spec: LossSpec) -> None:
        super().__init__(classes="loss -off", id=f"loss-{spec.name}")
        self.spec = spec
        self.switch = Switch(classes="loss-switch")
        self.weight = OptionField(spec.fields[0], label=False)
        self.options = [OptionField(field) for field in spec.fields[1:]]
        self.baseline: dict[str, Any] = {}

    def compose(self) -> ComposeResult:
        with Horizontal(classes="loss-head"):
            yield self.switch.with_tooltip(f"use {self.spec.name} (off sets its weight to 0)")
            yield Label(self.spec.name, classes="loss-name", markup=False)
            yield self.weight
        if self.options:
            yield Vertical(*self.options, classes="loss-options")

    @property
    def enabled(self) -> bool:
        return self.switch.value

    def load(self, options: dict[str, Any] | None) -> None:
        """Show the preset's options of this loss (``None``: the preset does not use it)."""
        self.baseline = dict(options) if options is not None else {**self.spec.defaults, "weight": 0.0}
        on = self.baseline["weight"] > 0
        self.switch.value = on
        # Switched off, the weight shows what switching on will use.
        self.weight.show(self.baseline["weight"] if on else (self.spec.defaults["weight"] or 1.0))
        for field in self.options:
            field.show(self.baseline.get(field.spec.name))
        self._show_enabled(on)

    @on(Switch.Changed, ".loss-switch")
    def _switched(self, event: Switch.Changed) -> None:
        self._show_enabled(event.value)

    def _show_enabled(self, on: bool) -> None:
        self.set_class(not on, "-off")
        self.weight.editor.disabled = not on

    def overrides(self) -> list[str]:
        if not self.enabled:
            return [f"loss.{self.spec.name}.weight=0"] if self.baseline.get("weight", 0) > 0 else []
        fields = [self.weight, *self.options]
        return [text for field in fields if (text := field.override(self.baseline.get(field.spec.name)))]

    def error_lines(self) -> dict[str, ErrorLine]:
        return {field.spec.key: field.error_line for field in (self.weight, *self.options)}


class TeacherEditor(Vertical):
    """Where the teacher comes from (none, auto, a finished run, a checkpoint file) and its architecture."""

    def __init__(self, specs: dict[str, FieldSpec]) -> None:
        super().__init__(id="teacher-editor", classes="-source-none")
        self.source_select: Select[str] = Select(TEACHER_SOURCES, allow_blank=False, compact=True,
                                                 id="teacher-source", classes="field-editor")
        self.preset = OptionField(specs["preset"])
        run_spec = dataclasses.replace(specs["checkpoint"], help="a finished run of the runs folder",
                                       choices=())
        self.run = OptionField(run_spec, id_suffix="-run")
        self.path = OptionField(dataclasses.replace(specs["checkpoint"], help="path of a .pt checkpoint"),
                                id_suffix="-path")
        self.arch = OptionField(specs["arch"])
        self.baseline: dict[str, Any] | None = None

    def compose(self) -> ComposeResult:
        with Horizontal(classes="field-row"):
            yield Label("source", classes="field-label")
            yield self.source_select
            yield Label("where the frozen teacher's weights come from", classes="field-help")
        yield self.preset
        yield self.run
        yield self.path
        yield self.arch

    @property
    def source(self) -> str:
        return str(self.source_select.value)

    @staticmethod
    def source_of(teacher: dict[str, Any] | None) -> str:
        if teacher is None:
            return "none"
        checkpoint = str(teacher.get("checkpoint"))
        return "auto" if checkpoint == "auto" else "run" if RUN_ID.fullmatch(checkpoint) else "path"

    @property
    def run_id(self) -> str:
        editor = self.run.editor
        return "" if editor.is_blank() else str(editor.value)

    def set_finished_runs(self, rows: list[RunRow]) -> None:
        current = self.run_id
        ids = tuple(row.id for row in rows)
        labels = {row.id: f"{row.id}  {row.student}" + (f"  {row.best_acc:.2f}%" if row.best_acc is not None else "")
                  for row in rows}
        self.run.set_choices(ids + ((current,) if current and current not in ids else ()), labels)
        if current or ids:
            self.run.editor.value = current or ids[0]  # the newest, until one is chosen

    def load(self, teacher: dict[str, Any] | None) -> None:
        self.baseline = teacher
        base = teacher or self.defaults()
        source = self.source_of(teacher)
        self.source_select.value = source
        self.preset.show(base.get("preset"))
        if source == "run":
            self.run.show(base["checkpoint"])
        self.path.show(base["checkpoint"] if source == "path" else None)
        self.arch.show(base.get("arch"))
        self._show_source(source)

    @staticmethod
    def defaults() -> dict[str, Any]:
        return dataclasses.asdict(TeacherConfig())

    @on(Select.Changed, "#teacher-source")
    def _source_changed(self, event: Select.Changed) -> None:
        self._show_source(str(event.value))

    def _show_source(self, source: str) -> None:
        for _, name in TEACHER_SOURCES:
            self.set_class(name == source, f"-source-{name}")

    def checkpoint_field(self) -> OptionField | None:
        return {"run": self.run, "path": self.path}.get(self.source)

    def overrides(self) -> list[str]:
        source, baseline = self.source, self.baseline
        if source == "none":
            return [] if baseline is None else ["teacher=null"]
        base = baseline or self.defaults()
        # Without a teacher in the preset, every teacher key must be given to create the section.
        fresh = baseline is None
        found: list[str] = []
        checkpoint = self.checkpoint_field()
        if checkpoint is None:
            if fresh or self.source_of(baseline) != "auto":
                found.append("teacher.checkpoint=auto")
            if fresh or self.preset.differs(base.get("preset")):
                found.append(f"teacher.preset={self.preset.text()}")
        elif fresh or self.source_of(baseline) != source or checkpoint.differs(base["checkpoint"]):
            found.append(f"teacher.checkpoint={checkpoint.text()}")
        if text := self.arch.override(base.get("arch")):
            found.append(text)
        return found

    def error_lines(self) -> dict[str, ErrorLine]:
        lines = {"teacher.preset": self.preset.error_line, "teacher.arch": self.arch.error_line}
        if (checkpoint := self.checkpoint_field()) is not None:
            lines["teacher.checkpoint"] = checkpoint.error_line
        return lines


def error_key(message: str, overrides: list[str], keys: Iterable[str]) -> str | None:
    """The dotted key a validator message is about: the longest key it starts with."""
    for text in overrides:
        if message.startswith(f"--set {text!r}"):
            return text.partition("=")[0]
    body = message.removeprefix("Unknown key ").removeprefix("Missing key ")
    matches = [key for key in keys if body.startswith(key) and body[len(key):len(key) + 1] in ("", ":", "[", " ", ".")]
    return max(matches, key=len, default=None)


def section(title: str, *children: Widget, id: str) -> Vertical:
    box = Vertical(*children, classes="panel launcher-section", id=id)
    box.border_title = title
    return box


class Launcher(Vertical):
    """The launcher form, its validation status, the equivalent command line and its buttons."""

    class Validated(Message):
        """Posted after each validation, so the screen can refresh what depends on it (``valid``)."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.ready = False
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
                yield Static("Loading the model and loss registries (this imports PyTorch)…", classes="muted")
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
        schema = load_form_schema()
        self.app.call_from_thread(self._build_form, schema)

    async def _build_form(self, schema: FormSchema) -> None:
        data = [OptionField(spec) for spec in schema.data]
        data_more = [OptionField(spec) for spec in schema.data_more]
        train = [OptionField(spec) for spec in schema.train]
        train_more = [OptionField(spec) for spec in schema.train_more]
        self.data_fields, self.train_fields = data + data_more, train + train_more
        self.student_field = OptionField(schema.student)
        self.teacher = TeacherEditor(schema.teacher)
        self.losses = [LossEditor(spec) for spec in schema.losses]
        await self.query_one("#launcher-loading").remove()
        await self.query_one("#launcher-form", VerticalScroll).mount_all([
            section("Data", *data, Collapsible(*data_more, title="more data options"), id="section-data"),
            section("Teacher", self.teacher, id="section-teacher"),
            section("Student", self.student_field, Static("", id="parameter-counts", classes="muted"),
                    id="section-student"),
            section("Loss mix", self.loss_error, *self.losses, id="section-loss"),
            section("Training", *train, Collapsible(*train_more, title="more training options"),
                    id="section-train"),
        ])
        for button in self.query("#launcher-buttons Button"):
            button.disabled = False
        self.teacher.set_finished_runs(self.finished)
        self.presets = schema.presets
        if not any(self._try_preset(preset.path) for _, presets in schema.presets for preset in presets):
            self._show_status(f"No preset loads: choose one (ctrl+o), or add one to {display_path(presets_dir())}.",
                              error=True)
        self.ready = True
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
        resolved = load_config(data=raw).to_dict()
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
        if path is not None and self.ready:
            self.load_preset(path)

    def set_finished_runs(self, rows: list[RunRow]) -> None:
        """The finished runs a teacher can be chosen from (the screen loads them)."""
        self.finished = [row for row in rows if row.status == "finished"]
        if self.teacher is not None and self.ready:  # else the form, when built, takes them
            self.teacher.set_finished_runs(self.finished)

    # --- overrides and validation ----------------------------------------------------------

    def overrides(self) -> list[str]:
        """``KEY=VALUE`` for every value that differs from the preset, in form order."""
        if not self.ready or self.teacher is None or self.student_field is None:
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
        if not self.ready or self.preset_path is None:
            return
        overrides = self.overrides()
        try:
            # load_config(preset_path, overrides) without re-reading the file on every key
            # press: parsing the YAML was about two thirds of the time.
            load_config(data=self.preset_raw, overrides=overrides)
            self.error = None
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
        if not self.ready or self.teacher is None:
            return
        assert self.student_field is not None
        student = self.student_field.editor.value.strip()
        teacher = self.teacher
        dataset = str(self.field("data.dataset").editor.value)
        self.params_pending = True
        self._count_parameters(student, teacher.source, teacher.preset.editor.value.strip(),
                               teacher.run_id, teacher.arch.editor.value.strip(),
                               HEAD_CLASSES.get(dataset, 10))

    @work(thread=True, exclusive=True, group="launcher-parameters")
    def _count_parameters(self, student: str, source: str, preset: str, run_id: str, arch: str,
                          classes: int) -> None:
        teacher = teacher_arch_of(source, preset, run_id, arch, self.finished)
        counts = {}
        for name in filter(None, (student, teacher)):
            if (name, classes) not in self._parameter_counts:
                self._parameter_counts[(name, classes)] = parameter_count(name, classes)
            counts[name] = self._parameter_counts[(name, classes)]
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self._show_parameter_counts, student, teacher, counts, classes)

    def _show_parameter_counts(self, student: str, teacher: str | None, counts: dict[str, int | None],
                               classes: int) -> None:
        def count(arch: str | None) -> str:
            found = counts.get(arch or "")
            return f"{found:,}" if found else "?"

        parts = [f"params: student {count(student)}"]
        if self.teacher is not None and self.teacher.source != "none":
            parts.append(f"teacher {teacher or '?'} {count(teacher)}")
            if teacher and counts.get(teacher) and counts.get(student):
                parts.append(f"compression {counts[teacher] / counts[student]:.1f}×")
        text = " · ".join(parts) + f" ({classes}-class head)"
        self.query_one("#parameter-counts", Static).update(Text(text))
        self.params_pending = False

    def field(self, key: str) -> OptionField:
        return next(field for field in self.fields if field.spec.key == key)

    # --- actions ---------------------------------------------------------------------------

    def start(self) -> None:
        if self.valid:
            self.app.start_run(self.run_args())
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
        self.app.push_screen(PresetNameScreen(f"{self.preset_path.stem}_custom"), self._save_named)

    def _save_named(self, name: str | None) -> None:
        if name is None:
            return
        target = preset_save_path(name)
        if not target.exists():
            self._save_to(target)
            return
        from kdtui.tui.screens.confirm import ConfirmScreen

        self.app.push_screen(ConfirmScreen(f"{display_path(target)} exists. Overwrite it?"),
                             lambda yes: self._save_to(target) if yes else None)

    def _save_to(self, target: Path) -> None:
        assert self.preset_path is not None
        try:
            write_preset(self.preset_path, self.overrides(), target)
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


# --- dialogs ------------------------------------------------------------------------------


class PresetPicker(ModalScreen[Path | None]):
    """The presets, grouped as ``kdtui presets`` lists them, filtered as you type.

    Filtering works on ``presets`` in memory; without them (the launcher has not read them
    yet) the picker reads them once in a thread worker.
    """

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel"), Binding("down", "focus_list", show=False)]

    def __init__(self, current: str | None, presets: PresetGroups | None = None) -> None:
        super().__init__()
        self.current = current
        self.presets = presets
        self.paths: dict[str, Path] = {}

    def compose(self) -> ComposeResult:
        with Vertical(id="preset-picker", classes="panel dialog") as box:
            box.border_title = "Choose a preset"
            yield Input(placeholder="filter by name or description, or a path to a .yaml file",
                        id="preset-filter")
            yield OptionList(id="preset-options")

    def on_mount(self) -> None:
        if self.presets is None:
            options = self.query_one("#preset-options", OptionList)
            options.add_option(Option(Text("Reading the presets…", style="dim"), disabled=True))
            self._read_presets()
        else:
            self._fill("")

    @work(thread=True, exclusive=True, group="preset-picker", exit_on_error=False)
    def _read_presets(self) -> None:
        presets = grouped_presets()
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self._presets_read, presets)

    def _presets_read(self, presets: PresetGroups) -> None:
        if self.is_attached:  # else dismissed meanwhile
            self.presets = presets
            self._fill(self.query_one("#preset-filter", Input).value)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR and event.worker.group == "preset-picker":
            options = self.query_one("#preset-options", OptionList)
            options.clear_options()
            options.add_option(Option(Text(f"Could not read the presets: {event.worker.error}", style="dim"),
                                      disabled=True))

    def _fill(self, pattern: str) -> None:
        if self.presets is None:
            return  # still reading them: filled with what is typed by then
        options = self.query_one("#preset-options", OptionList)
        options.clear_options()
        self.paths.clear()
        words = pattern.lower().split()
        for group, presets in self.presets:
            shown = [p for p in presets if all(w in f"{p.name} {p.description}".lower() for w in words)]
            if not shown:
                continue
            options.add_option(Option(Text(group, style="bold"), disabled=True))
            for preset in shown:
                self.paths[preset.name] = preset.path
                options.add_option(Option(Text.assemble(("  " + preset.name, "bold"),
                                                        ("  " + preset.description, "dim")), id=preset.name))
        if self.current in self.paths:
            options.highlighted = options.get_option_index(self.current)
        elif self.paths:
            options.highlighted = options.get_option_index(next(iter(self.paths)))

    @on(Input.Changed, "#preset-filter")
    def _filter(self, event: Input.Changed) -> None:
        self._fill(event.value)

    @on(Input.Submitted, "#preset-filter")
    def _submitted(self, event: Input.Submitted) -> None:
        options = self.query_one("#preset-options", OptionList)
        typed = Path(event.value.strip()).expanduser()
        if typed.suffix in (".yaml", ".yml") and typed.is_file():
            self.dismiss(typed)
        elif options.highlighted is not None:
            option = options.get_option_at_index(options.highlighted)
            if option.id is not None:
                self.dismiss(self.paths[option.id])

    @on(OptionList.OptionSelected, "#preset-options")
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        if event.option.id is not None:
            self.dismiss(self.paths[event.option.id])

    def action_focus_list(self) -> None:
        self.query_one("#preset-options").focus()


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
