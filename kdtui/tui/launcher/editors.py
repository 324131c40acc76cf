"""The launcher's compound editors: one per registered loss (on/off, weight, options) and the
teacher's (where it comes from, and its architecture). Each builds its own ``--set`` overrides.

Usage::

    editor = LossEditor(loss_spec); editor.load(resolved["loss"].get("kd"))
    editor.overrides()                       # ['loss.kd.weight=0'] once switched off
    teacher = TeacherEditor(schema.teacher); teacher.load(resolved.get("teacher"))
"""

from __future__ import annotations

import dataclasses
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Label, Select, Switch

from kdtui.config import TeacherConfig
from kdtui.store import RUN_ID
from kdtui.tui.launcher.fields import ErrorLine, OptionField
from kdtui.tui.launcher.schema import FieldSpec, LossSpec
from kdtui.store import RunRow

# The teacher source select's (label, value) pairs; the editor's class -source-<value> shows its fields.
TEACHER_SOURCES = (("none: no teacher", "none"), ("auto: newest finished run of a preset", "auto"),
                   ("a finished run", "run"), ("a checkpoint file", "path"))


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
