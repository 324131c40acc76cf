"""The preset picker: a modal listing the presets by group, then the study files, filtered as
you type; it can also take the path of a .yaml file. Dismissed with the chosen file's path,
or None (the launcher starts a study file, and loads a preset).

Usage::

    app.push_screen(PresetPicker("quickstart", presets), on_picked)   # on_picked(path | None)
"""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, OptionList
from textual.widgets.option_list import Option
from textual.worker import Worker, WorkerState, get_current_worker

from kdtui.presets import grouped_presets
from kdtui.study.spec import study_groups
from kdtui.tui.launcher.schema import PresetGroups


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
        self.studies: PresetGroups = []   # read in a worker when the picker opens
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
        else:
            self._fill("")
        self._read_presets(self.presets is None)

    @work(thread=True, exclusive=True, group="preset-picker", exit_on_error=False)
    def _read_presets(self, presets_too: bool) -> None:
        presets = grouped_presets() if presets_too else self.presets
        studies = study_groups()
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self._presets_read, presets, studies)

    def _presets_read(self, presets: PresetGroups, studies: PresetGroups) -> None:
        if self.is_attached:  # else dismissed meanwhile
            self.presets, self.studies = presets, studies
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
        for group, presets in [*self.presets, *self.studies]:
            study = any(members is presets for _, members in self.studies)
            shown = [p for p in presets if all(w in f"{p.name} {p.description}".lower() for w in words)]
            if not shown:
                continue
            options.add_option(Option(Text("studies (starts kdtui sweep)" if study else group, style="bold"),
                                      disabled=True))
            for preset in shown:
                key = f"study:{preset.name}" if study else preset.name   # a study may share a preset's name
                self.paths[key] = preset.path
                options.add_option(Option(Text.assemble(("  " + preset.name, "bold"),
                                                        ("  " + preset.description, "dim")), id=key))
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
