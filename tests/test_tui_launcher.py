"""The home screen and its launcher: presets into fields, the CLI's validator inline, the
overrides and command line, starting a run, saving a preset, recent runs, small terminals
and an SVG snapshot."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Awaitable, Callable

import pytest
import yaml
from textual.app import App

import kdtui.presets
from kdtui.config import load_config
from kdtui.errors import KdtuiError
from kdtui.presets import find_preset
from kdtui.store import RunDir, runs_root
from kdtui.tui.app import KdtuiApp
from kdtui.tui.screens.confirm import ConfirmScreen
from kdtui.tui.screens.home import HomeScreen
from kdtui.tui.launcher import Launcher, PresetNameScreen, PresetPicker, preset_save_path, yaml_text

FINISHED_RUN = "20261128-101500-tiny_teacher"
# The first import of PyTorch (the loss and model registries) takes seconds on a busy machine.
READY_TIMEOUT_S = 180


async def wait_until(pilot, condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for the app"
        await pilot.pause(0.05)


async def settle(pilot, launcher: Launcher) -> None:
    """Let the change events arrive and the validation they schedule run."""
    await pilot.pause()
    await wait_until(pilot, lambda: not launcher.validation_pending)


async def ready_launcher(pilot) -> Launcher:
    await wait_until(pilot, lambda: bool(pilot.app.screen.query(Launcher)))
    launcher = pilot.app.screen.query_one(Launcher)
    await wait_until(pilot, lambda: launcher.ready and not launcher.params_pending, READY_TIMEOUT_S)
    await settle(pilot, launcher)
    return launcher


def run_home(body: Callable[[KdtuiApp, object, Launcher], Awaitable[None]], size: tuple[int, int] = (120, 40)) -> None:
    async def main() -> None:
        app = KdtuiApp(runs_root(), start="home")
        async with app.run_test(size=size) as pilot:
            await body(app, pilot, await ready_launcher(pilot))

    asyncio.run(main())


async def type_into(pilot, launcher: Launcher, key: str, text: str) -> None:
    editor = launcher.field(key).editor
    editor.focus()
    editor.clear()
    await pilot.press(*text)
    await settle(pilot, launcher)


async def set_switch(pilot, launcher: Launcher, selector: str, on: bool) -> None:
    switch = launcher.query_one(selector)
    switch.focus()
    if switch.value != on:
        await pilot.press("space")
    await settle(pilot, launcher)


async def pick_preset(pilot, launcher: Launcher, name: str) -> None:
    await pilot.press("ctrl+o")
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, PresetPicker))
    await pilot.press(*name, "enter")
    await wait_until(pilot, lambda: not isinstance(pilot.app.screen, PresetPicker))
    await settle(pilot, launcher)


def write_finished_run(root: Path, run_id: str = FINISHED_RUN) -> RunDir:
    run = RunDir(root / run_id)
    (run.path / "checkpoints").mkdir(parents=True)
    run.write_config({"preset": "tiny_teacher", "data": {"dataset": "shapes"}, "student": {"arch": "wrn_16_1"},
                      "loss": {"ce": {"weight": 1.0}}, "train": {"epochs": 2}})
    run.write_summary({"status": "finished", "run_id": run_id, "epochs": 2, "epochs_done": 2,
                       "best_test_acc": 61.25, "final_test_acc": 60.5})
    # Its epochs recorded too: a summary counting epochs metrics.jsonl lacks is listed broken.
    run.metrics_path.write_text("".join(f'{{"event": "epoch", "epoch": {e}, "test_acc": {acc}}}\n'
                                        for e, acc in ((1, 61.25), (2, 60.5))))
    return run


def cli_message(preset: str, overrides: list[str]) -> str:
    """What `kdtui run PRESET --set …` reports for these overrides."""
    with pytest.raises(KdtuiError) as caught:
        load_config(find_preset(preset), overrides)
    return str(caught.value)


def test_choosing_a_preset_shows_its_values(tiny_presets: Path) -> None:
    async def body(app, pilot, launcher: Launcher) -> None:
        # The first preset of the first group is shown at start.
        assert launcher.preset_path == tiny_presets / "tiny_student.yaml"
        await pick_preset(pilot, launcher, "tiny_teacher")
        assert launcher.preset_path == tiny_presets / "tiny_teacher.yaml"
        assert launcher.field("train.epochs").editor.value == "2"
        assert launcher.field("train.lr").editor.value == "0.05"
        assert launcher.field("train.schedule").editor.value == "cosine"
        assert launcher.field("data.dataset").editor.value == "shapes"
        assert launcher.field("student.arch").editor.value == "wrn_10_1"
        assert launcher.teacher.source == "none"
        assert launcher.query_one("#loss-ce .loss-switch").value is True
        assert launcher.query_one("#loss-kd .loss-switch").value is False
        assert launcher.overrides() == [] and launcher.valid

        await pick_preset(pilot, launcher, "tiny_student")
        assert launcher.field("train.epochs").editor.value == "3"
        assert launcher.teacher.source == "auto"
        assert launcher.teacher.preset.editor.value == "tiny_teacher"
        assert launcher.query_one("#loss-amd .loss-switch").value is True
        assert launcher.query_one("#field-loss-amd-local Switch").value is True
        assert launcher.query_one("#field-loss-kd-temperature Input").value == "4"
        assert launcher.query_one("#field-loss-kd-weight Input").value == "0.9"
        assert launcher.overrides() == [] and launcher.valid

    run_home(body)


def test_the_form_is_usable_before_pytorch_has_loaded(tiny_presets: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    import kdtui.tui.launcher.launcher as launcher_module

    release = threading.Event()
    real = launcher_module.load_loss_specs

    def slow_loss_specs():
        release.wait(60)                     # as if importing PyTorch took this long
        return real()

    monkeypatch.setattr(launcher_module, "load_loss_specs", slow_loss_specs)

    async def main() -> None:
        app = KdtuiApp(runs_root(), start="home")
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_until(pilot, lambda: bool(app.screen.query(Launcher)))
            launcher = app.screen.query_one(Launcher)
            await wait_until(pilot, lambda: launcher.shown)
            await settle(pilot, launcher)
            assert not launcher.ready and launcher.preset_path == tiny_presets / "tiny_student.yaml"
            assert launcher.field("train.epochs").editor.value == "3" and launcher.teacher.source == "auto"
            await type_into(pilot, launcher, "train.epochs", "5")       # editable already
            assert launcher.command_line() == "kdtui run tiny_student --set train.epochs=5 --headless"
            assert "once PyTorch has loaded" in str(launcher.query_one("#launcher-status").content)
            assert launcher.query_one("#start").disabled and app.screen.query("#losses-loading")
            release.set()
            await wait_until(pilot, lambda: launcher.ready, READY_TIMEOUT_S)
            await settle(pilot, launcher)
            assert launcher.query_one("#loss-amd .loss-switch").value is True
            assert launcher.overrides() == ["train.epochs=5"] and launcher.valid   # the edit is kept
            assert not launcher.query_one("#start").disabled

    asyncio.run(main())


def test_every_loss_and_its_options_are_generated(tiny_presets: Path) -> None:
    async def body(app, pilot, launcher: Launcher) -> None:
        from kdtui.losses import LOSSES

        for name in LOSSES.names():
            assert launcher.query_one(f"#loss-{name}").query(".loss-switch")
        for key in ("kd-temperature", "amd-margin", "amd-scale", "amd-local", "amd-terms"):
            assert launcher.query(f"#field-loss-{key}"), key
        # AMD's A/P/N: one checkbox each; unticking N is an override of the list.
        boxes = {str(box.label): box for box in launcher.query("#field-loss-amd-terms Checkbox")}
        assert set(boxes) == {"A", "P", "N"}
        boxes["N"].value = False
        await settle(pilot, launcher)
        assert launcher.overrides() == ["loss.amd.terms=[A, P]"]
        # Disabled losses are collapsed to their switch and weight.
        assert launcher.query_one("#loss-dkd").has_class("-off")
        assert not launcher.query_one("#loss-amd").has_class("-off")

    run_home(body)


def test_lr_zero_shows_the_cli_message_inline_and_disables_start(tiny_presets: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[list[str]] = []
    monkeypatch.setattr(KdtuiApp, "start_run", lambda self, args: started.append(args))

    async def body(app, pilot, launcher: Launcher) -> None:
        await type_into(pilot, launcher, "train.lr", "0")
        expected = cli_message("tiny_student", ["train.lr=0"])
        assert expected.startswith("train.lr: got 0.0, expected a value greater than 0")
        assert launcher.field_error("train.lr") == expected
        assert launcher.error == expected
        assert launcher.query_one("#start").disabled
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert started == []

        await type_into(pilot, launcher, "train.lr", "0.05")
        assert launcher.field_error("train.lr") is None and launcher.valid

    run_home(body)


def test_valid_change_enables_start_with_the_overrides(tiny_presets: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[list[str]] = []
    monkeypatch.setattr(KdtuiApp, "start_run", lambda self, args: started.append(args))

    async def body(app, pilot, launcher: Launcher) -> None:
        await type_into(pilot, launcher, "train.epochs", "0")
        assert launcher.field_error("train.epochs") == cli_message("tiny_student", ["train.epochs=0"])
        await type_into(pilot, launcher, "train.epochs", "5")
        assert not launcher.query_one("#start").disabled
        assert launcher.command_line() == "kdtui run tiny_student --set train.epochs=5 --headless"
        await pilot.click("#start")
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert started == [["tiny_student", "--set", "train.epochs=5"]] * 2

    run_home(body)


def test_a_dataset_the_teacher_cannot_serve_is_rejected(tiny_presets: Path) -> None:
    async def body(app, pilot, launcher: Launcher) -> None:
        dataset = launcher.field("data.dataset").editor
        dataset.value = "cifar100"            # the teacher (auto, preset tiny_teacher) knows 10 classes
        await settle(pilot, launcher)
        assert not launcher.valid and launcher.query_one("#start").disabled
        error = launcher.field_error("data.dataset")
        assert "cifar100 has 100 classes" in error and "preset 'tiny_teacher'" in error and "shapes" in error
        dataset.value = "cifar10"             # 10 classes too: the same head
        await settle(pilot, launcher)
        assert launcher.valid
        dataset.value = "cifar100"
        await settle(pilot, launcher)
        await set_switch(pilot, launcher, "#loss-kd .loss-switch", False)
        await set_switch(pilot, launcher, "#loss-amd .loss-switch", False)
        assert launcher.valid                 # no loss uses the teacher: nothing to serve

    run_home(body)


def test_the_command_box_shows_the_whole_command(tiny_presets: Path) -> None:
    from test_tui_dashboard import screen_text

    async def body(app, pilot, launcher: Launcher) -> None:
        for key, value in (("train.epochs", "12345"), ("train.lr", "0.0123456"), ("train.seed", "987654321"),
                           ("train.weight_decay", "0.000321"), ("train.batch_size", "48"),
                           ("student.arch", "wrn_16_1"), ("train.device", "cpu"), ("train.milestones", "[3, 6, 9]")):
            await type_into(pilot, launcher, key, value)
        box = launcher.query_one("#launcher-command")
        await pilot.pause(0.2)
        command = launcher.command_line()
        assert len(command) > 3 * box.size.width          # longer than the three lines it had
        shown = "".join(screen_text(app, box.region).split("\n"))
        assert "".join(shown.split()) == "".join(("$ " + command).split())

    run_home(body)


def test_turning_losses_on_and_off(tiny_presets: Path) -> None:
    async def body(app, pilot, launcher: Launcher) -> None:
        await set_switch(pilot, launcher, "#loss-at .loss-switch", True)
        assert launcher.overrides() == ["loss.at.weight=1000"]
        assert not launcher.query_one("#loss-at").has_class("-off")

        await set_switch(pilot, launcher, "#loss-kd .loss-switch", False)
        assert launcher.overrides() == ["loss.at.weight=1000", "loss.kd.weight=0"]
        assert launcher.query_one("#loss-kd").has_class("-off")
        assert launcher.valid
        assert "--set loss.kd.weight=0" in launcher.command_line()
        # The validator agrees: KD is off, AT is on with its default weight.
        config = load_config(launcher.preset_path, launcher.overrides())
        assert set(config.active_losses) == {"ce", "amd", "at"}

        # Every loss off: the validator's loss-section message appears at the loss mix.
        for name in ("ce", "amd", "at"):
            await set_switch(pilot, launcher, f"#loss-{name} .loss-switch", False)
        assert launcher.field_error("loss") == cli_message("tiny_student", launcher.overrides())
        assert not launcher.valid

    run_home(body)


def test_save_as_preset_writes_a_preset_that_loads(tiny_presets: Path) -> None:
    async def body(app, pilot, launcher: Launcher) -> None:
        await type_into(pilot, launcher, "train.lr", "0.02")
        await set_switch(pilot, launcher, "#loss-kd .loss-switch", False)
        launcher.query_one("#field-loss-amd-local Switch").value = False
        await settle(pilot, launcher)
        overrides = launcher.overrides()
        assert overrides == ["loss.amd.local=false", "loss.kd.weight=0", "train.lr=0.02"]
        shown = load_config(tiny_presets / "tiny_student.yaml", overrides).to_dict()

        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: isinstance(app.screen, PresetNameScreen))
        name_input = app.screen.query_one("#preset-name")
        assert name_input.value == "tiny_student_custom"
        description = app.screen.query_one("#preset-description-input")
        assert description.value == ("tiny_student with loss.amd.local=false, loss.kd.weight=0, "
                                     "train.lr=0.02")                  # not the old description
        name_input.value = "bad/name"
        await pilot.pause()
        assert app.screen.query_one("#save").disabled
        # The rule of run names, with a preset's wording and example (not "--name wrn16_amd").
        message = app.screen.query_one("#preset-name-error").message
        assert message.startswith("Preset name 'bad/name' is not allowed") and "--name" not in message
        name_input.value = "tiny_mine"
        description.value = "tiny student, KD off, global AMD"
        await pilot.pause()
        name_input.focus()
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, HomeScreen))
        await settle(pilot, launcher)

        saved = tiny_presets / "tiny_mine.yaml"
        raw = yaml.safe_load(saved.read_text())
        assert raw["preset"] == "tiny_mine" and list(raw)[0] == "preset"
        assert raw["description"] == "tiny student, KD off, global AMD"
        assert raw["loss"]["kd"] == {"weight": 0, "temperature": 4}
        loaded = load_config(saved).to_dict()
        assert loaded == {**shown, "preset": "tiny_mine", "description": "tiny student, KD off, global AMD"}
        # The form now edits the saved preset: same values, nothing overridden.
        assert launcher.preset_path == saved and launcher.overrides() == []
        assert launcher.field("train.lr").editor.value == "0.02"

        # Saving over an existing preset asks first; "n" goes back to the name, the file untouched.
        await type_into(pilot, launcher, "train.epochs", "7")
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: isinstance(app.screen, PresetNameScreen))
        app.screen.query_one("#preset-name").value = "tiny_mine"
        await pilot.pause()
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("n")
        await wait_until(pilot, lambda: isinstance(app.screen, PresetNameScreen))
        assert app.screen.query_one("#preset-name").value == "tiny_mine"
        assert load_config(saved).train.epochs == 3
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_until(pilot, lambda: isinstance(app.screen, HomeScreen))
        await settle(pilot, launcher)
        assert load_config(saved).train.epochs == 7

    run_home(body)


def test_where_presets_are_saved(tiny_presets: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert preset_save_path("mine") == tiny_presets / "mine.yaml"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("kdtui.tui.launcher.presets_io.os.access", lambda path, mode: False)
    assert preset_save_path("mine") == tmp_path / "mine.yaml"


def test_override_values_read_back_as_typed() -> None:
    for value in (0.05, 1e-4, 5e-05, 5000.0, 3, True, None, [40, 80], ["A", "P"], "cpu", "yes", "1e-4", "a: b"):
        assert yaml.safe_load(yaml_text(value)) == value, value


def test_recent_runs_open_their_dashboard_and_can_be_the_teacher(tiny_presets: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    run = write_finished_run(runs_root())
    opened: list[RunDir] = []
    monkeypatch.setattr(KdtuiApp, "open_dashboard", lambda self, ref: opened.append(ref))

    async def body(app, pilot, launcher: Launcher) -> None:
        table = app.screen.query_one("#recent-table")
        await wait_until(pilot, lambda: table.row_count == 1)
        table.focus()
        await pilot.press("enter")
        await pilot.pause()
        assert opened == [run]

        launcher.teacher.source_select.value = "run"
        await settle(pilot, launcher)
        assert launcher.teacher.run_id == FINISHED_RUN
        assert launcher.overrides() == [f"teacher.checkpoint={FINISHED_RUN}"]
        assert launcher.valid
        # The teacher's architecture comes from the run: both counts and the ratio are shown.
        await wait_until(pilot, lambda: not launcher.params_pending)
        counts = str(launcher.query_one("#parameter-counts").content)
        assert counts == "params: student 77,850 · teacher wrn_16_1 175,066 · compression 2.2× (10-class head)"

    run_home(body)


def test_recent_runs_keep_their_best_accuracy_in_view_at_120_columns(tiny_presets: Path) -> None:
    from test_tui_dashboard import screen_text

    run = write_finished_run(runs_root(), "20261128-101600-cifar100_wrn40_2_to_wrn16_1_amd_gl_seed2")

    async def body(app, pilot, launcher: Launcher) -> None:
        table = app.screen.query_one("#recent-table")
        await wait_until(pilot, lambda: table.row_count == 1)
        await pilot.pause(0.2)
        lines = screen_text(app, table.region).splitlines()
        assert lines[0].split()[:3] == ["run", "best", "%"]
        assert lines[1].split()[:3] == ["cifar100_wrn40_2_to…", "61.25", "finished"]
        assert run.id.startswith("20261128-101600-" + lines[1].split()[0][:-1])

    run_home(body)


def test_a_broken_recent_run_opens_its_folder_without_resolving_it(tiny_presets: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    # A run folder without config.yaml: resolving "20261129-…" as a reference would fail.
    broken = RunDir(runs_root() / "20261129-090000-broken")
    broken.path.mkdir(parents=True)
    opened: list[object] = []
    monkeypatch.setattr(KdtuiApp, "open_dashboard", lambda self, ref: opened.append(ref))

    async def body(app, pilot, launcher: Launcher) -> None:
        table = app.screen.query_one("#recent-table")
        await wait_until(pilot, lambda: table.row_count == 1)
        table.focus()
        await pilot.press("enter")
        await pilot.pause()
        assert app.is_running and isinstance(app.screen, HomeScreen)
        assert len(opened) == 1 and isinstance(opened[0], RunDir) and opened[0].path == broken.path

    run_home(body)


def test_an_unreadable_runs_folder_is_reported_not_fatal(tiny_presets: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(root: Path) -> list:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr("kdtui.tui.screens.home.list_run_rows", fail)
    messages: list[str] = []
    notify = KdtuiApp.notify
    monkeypatch.setattr(KdtuiApp, "notify", lambda self, message, *args, **kwargs: (
        messages.append(message), notify(self, message, *args, **kwargs)))

    async def body(app, pilot, launcher: Launcher) -> None:
        await wait_until(pilot, lambda: "disk on fire" in messages)
        assert app.is_running and isinstance(app.screen, HomeScreen)
        assert "Could not read" in str(app.screen.query_one("#recent-note").content)

    run_home(body)


def test_the_picker_filters_without_reading_the_presets_again(tiny_presets: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[int] = []
    list_presets = kdtui.presets.list_presets

    def counted() -> list:
        reads.append(1)
        return list_presets()

    async def body(app, pilot, launcher: Launcher) -> None:
        # grouped_presets() reads through list_presets(): every read is counted from here on.
        monkeypatch.setattr(kdtui.presets, "list_presets", counted)
        await pilot.press("ctrl+o")
        await wait_until(pilot, lambda: isinstance(app.screen, PresetPicker))
        picker = app.screen
        await pilot.pause()
        assert set(picker.paths) == {"tiny_teacher", "tiny_student"}
        await pilot.press(*"teach")
        await pilot.pause()
        assert set(picker.paths) == {"tiny_teacher"}
        await pilot.press("backspace", *"xyz")
        await pilot.pause()
        assert picker.paths == {}
        assert reads == []
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, HomeScreen))

    run_home(body)


def test_the_picker_reads_the_presets_itself_before_the_form_has_them(tiny_presets: Path) -> None:
    chosen: list[Path | None] = []

    class PickerApp(App[None]):
        def on_mount(self) -> None:
            self.push_screen(PresetPicker(None), chosen.append)  # as before the launcher has read them

    async def main() -> None:
        app = PickerApp()
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_until(pilot, lambda: isinstance(app.screen, PresetPicker) and bool(app.screen.paths))
            await pilot.press(*"student", "enter")
            await wait_until(pilot, lambda: bool(chosen))
            assert chosen == [tiny_presets / "tiny_student.yaml"]

    asyncio.run(main())


def test_small_terminal_and_light_theme(tiny_presets: Path) -> None:
    async def body(app, pilot, launcher: Launcher) -> None:
        assert app.screen.has_class("-narrow")
        start = app.screen.query_one("#start")
        assert start.region.bottom <= 24 and start.region.width > 0  # the buttons stay on screen
        form = launcher.query_one("#launcher-form")
        assert form.max_scroll_y > 0  # the form scrolls
        form.scroll_end(animate=False)
        app.action_toggle_theme()
        await type_into(pilot, launcher, "train.lr", "0")
        await pilot.pause()
        assert app.theme == "textual-light" and not launcher.valid

    run_home(body, size=(80, 24))


def test_home_snapshot(tiny_presets: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, snap_compare) -> None:
    monkeypatch.chdir(tmp_path)  # paths are shown relative to the current directory: "runs"

    async def run_before(pilot) -> None:
        await ready_launcher(pilot)

    assert snap_compare(KdtuiApp(runs_root(), start="home"), terminal_size=(120, 40), run_before=run_before)
