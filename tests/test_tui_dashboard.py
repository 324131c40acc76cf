"""The live dashboard: a finished run, a run followed live from another process, a run the
app starts itself, stop, quit with a run active, narrow terminals and SVG snapshots."""

from __future__ import annotations

import asyncio
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from kdtui.store import RunDir
from kdtui.tui.app import KdtuiApp
from kdtui.tui.process import Launch
from kdtui.tui.screens.dashboard import DashboardScreen
from kdtui.tui.screens.confirm import ConfirmScreen
from kdtui.tui.screens.quit import QuitScreen
from kdtui.tui.screens.stop import StopScreen
from kdtui.tui.widgets.series_plot import SeriesPlot

RUN_ID = "20261128-101500-demo_amd"
TERMS = ("CE", "KD", "AMD_A", "AMD_P", "AMD_N")
# Each term's factor in the total, as a run records them (AMD: γ/3 for each of A, P, N).
WEIGHTS = {"CE": 0.1, "KD": 0.9, "AMD_A": 5000 / 3, "AMD_P": 5000 / 3, "AMD_N": 5000 / 3}


def write_fixed_run(root: Path, run_id: str = RUN_ID, epochs: int = 6) -> RunDir:
    """A finished KD + AMD run with deterministic curves (no clock, no tmp paths shown)."""
    run = RunDir(root / run_id)
    (run.path / "checkpoints").mkdir(parents=True)
    run.write_config({"preset": "demo_amd", "data": {"dataset": "shapes"},
                      "student": {"arch": "wrn_16_1"}, "teacher": {"arch": "wrn_16_3", "checkpoint": "t"},
                      "loss": {"ce": {"weight": 0.1}, "kd": {"weight": 0.9}, "amd": {"weight": 5000, "local": True}},
                      "train": {"epochs": epochs}})
    lines, logs = [], ["2026-11-28 10:15:00 INFO  run demo started on cpu", "2026-11-28 10:15:01 INFO  teacher test accuracy 88.00%"]
    steps = 20
    for epoch in range(1, epochs + 1):
        for step in range(2, steps + 1, 2):
            g = (epoch - 1) * steps + step
            loss = {"CE": 2.3 / (1 + 0.05 * g), "KD": 0.8 / (1 + 0.03 * g), "AMD_A": 3e-4 / (1 + 0.02 * g),
                    "AMD_P": 2e-4 / (1 + 0.01 * g), "AMD_N": 1e-5 * (1 + (g % 7) / 7)}
            loss["total"] = round(sum(WEIGHTS[k] * v for k, v in loss.items()), 6)
            lines.append({"event": "step", "epoch": epoch, "step": step, "steps_per_epoch": steps,
                          "global_step": g, "lr": 0.1, "loss": loss, "img_per_s": 400.0, "time": 1000.0 + g})
        acc = 40 + 40 * (1 - 0.6 ** epoch)
        lines.append({"event": "epoch", "epoch": epoch, "epochs": epochs, "lr": 0.1 * 0.5 ** epoch,
                      "loss": {k: v for k, v in lines[-1]["loss"].items()}, "train_acc": acc + 3,
                      "test_acc": acc - (2.0 if epoch == epochs else 0.0), "best_test_acc": acc,
                      "best_epoch": epoch, "img_per_s": 400.0, "time_s": 12.0, "time": 1000.0 + epoch * steps,
                      "term_weights": WEIGHTS})
        logs.append(f"2026-11-28 10:{15 + epoch}:00 INFO  epoch {epoch}/{epochs} test_acc={acc:.2f}")
    logs.append("2026-11-28 10:22:00 INFO  run finished")
    run.metrics_path.write_text("".join(json.dumps(r) + "\n" for r in lines))
    run.log_path.write_text("\n".join(logs) + "\n")
    run.write_summary({"status": "finished", "run_id": run_id, "epochs": epochs, "epochs_done": epochs,
                       "device": "cpu", "best_test_acc": 76.89, "final_test_acc": 76.13,
                       "teacher_test_acc": 88.0, "wall_time_s": 421.0, "term_weights": WEIGHTS})
    return run


def watch_fixed_run(root: Path) -> KdtuiApp:
    """The app on the dashboard of :func:`write_fixed_run`'s run, polling fast."""
    write_fixed_run(root)
    return KdtuiApp(root, start="watch", run_ref=RUN_ID, poll_interval=0.05)


async def fixed_run_shown(pilot):
    """The dashboard screen once all six epochs of :func:`write_fixed_run`'s run are read."""
    screen = pilot.app.screen
    await wait_for(pilot, lambda: len(screen.history.epochs) == 6, 10, "epochs")
    return screen


def run_app(app: KdtuiApp, scenario, size=(120, 40)):
    async def main():
        async with app.run_test(size=size) as pilot:
            await scenario(pilot)
    asyncio.run(main())


async def wait_for(pilot, condition, timeout=90.0, what="condition"):
    deadline = time.time() + timeout
    while not condition():
        if time.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.2)


def table_rows(screen) -> dict[str, tuple[str, str]]:
    table = screen.query_one("#values")
    return {str(table.get_row_at(i)[0]): tuple(map(str, table.get_row_at(i)[1:])) for i in range(table.row_count)}


def test_watch_a_finished_run_shows_every_panel(tmp_path):
    app = watch_fixed_run(tmp_path)

    async def scenario(pilot):
        screen = await fixed_run_shown(pilot)
        header = str(screen.query_one("#header").render())
        assert RUN_ID in header and "finished" in header and "epoch 6/6" in header and "7:01" in header
        assert header.startswith("test 76.13% best 76.89% @5 teacher 88.00%")
        rows = table_rows(screen)
        assert rows["test acc %"] == ("76.13", "76.89 @5") and rows["teacher acc %"][0] == "88"
        assert list(rows)[:3] == ["test acc %", "teacher acc %", "train acc %"]   # first, never below the fold
        assert set(f"loss {t}" for t in TERMS) <= set(rows)
        accuracy = screen.query_one("#accuracy", SeriesPlot).spec
        assert [s.label for s in accuracy.series] == ["train", "test", "teacher"]
        assert accuracy.hlines == [(88.0, (230, 40, 40))] and accuracy.points[0].xs == [5]  # best epoch marked
        assert screen.query_one("#lr", SeriesPlot).spec.series[0].ys[0] == pytest.approx(0.05)
        assert "run finished" in "\n".join(screen.query_one("#log").lines)

    run_app(app, scenario)


def test_the_header_shows_how_many_processes_trained_a_torchrun_run(tmp_path):
    run = write_fixed_run(tmp_path)
    run.write_summary({**run.read_summary(), "world_size": 4})
    app = KdtuiApp(tmp_path, start="watch", run_ref=RUN_ID, poll_interval=0.05)

    async def scenario(pilot):
        screen = await fixed_run_shown(pilot)
        assert " cpu ×4 processes " in str(screen.query_one("#header").render())

    run_app(app, scenario)


def test_a_run_without_summary_shows_broken_with_the_epochs_recorded(tmp_path):
    run = write_fixed_run(tmp_path)
    run.summary_path.unlink()
    app = KdtuiApp(tmp_path, start="watch", run_ref=RUN_ID, poll_interval=0.05)

    async def scenario(pilot):
        screen = await fixed_run_shown(pilot)
        await pilot.pause(0.1)
        screen.update_header()
        header = str(screen.query_one("#header").render())
        assert " broken " in header and "epoch 6/6" in header and "summary.json is missing" in header
        notified = []
        screen.notify = lambda message, **kw: notified.append(message)
        await pilot.press("R")
        assert "this one is broken: summary.json is missing" in notified[0]

    run_app(app, scenario)


def test_each_loss_term_has_its_own_colour(tmp_path):
    app = watch_fixed_run(tmp_path)

    async def scenario(pilot):
        screen = await fixed_run_shown(pilot)
        for key in ("e", "e"):   # the step view and the epoch view
            colours = [s.color for s in screen.query_one("#loss", SeriesPlot).spec.series]
            assert None not in colours and len(set(colours)) == len(colours) == 6
            await pilot.press(key)

    run_app(app, scenario)


def test_the_weighted_view_plots_terms_that_add_up_to_the_total(tmp_path):
    app = watch_fixed_run(tmp_path)

    async def scenario(pilot):
        screen = await fixed_run_shown(pilot)
        loss = screen.query_one("#loss", SeriesPlot)
        await pilot.press("l", "w")                               # linear, weighted
        assert "weighted" in loss.border_title
        labels = [s.label for s in loss.spec.series]
        assert labels[:3] == ["CE ×0.1", "KD ×0.9", "AMD_A ×1.67e+03"] and labels[-1] == "total"
        for view in ("step, unsmoothed", "epoch"):
            if view == "epoch":
                await pilot.press("e")
            else:
                await pilot.press(*["left_square_bracket"] * 3)
            *terms, total = loss.spec.series
            for i, value in enumerate(total.ys):                   # weight × term adds up to the total
                assert sum(term.ys[i] for term in terms) == pytest.approx(value, rel=1e-4), view
        legend = str(loss.border_subtitle)
        assert "AMD_N ×1.67e+03" in legend and "total" in legend     # on the border, not over the curves
        await pilot.press("w")
        assert loss.spec.series[0].label == "CE"

    run_app(app, scenario)


def test_round_step_ticks_and_no_negative_zero(tmp_path):
    app = watch_fixed_run(tmp_path)

    async def scenario(pilot):
        screen = await fixed_run_shown(pilot)
        await pilot.pause(0.2)
        for key in ("", "l", "l"):                                 # auto (log10), linear, log10
            if key:
                await pilot.press(key)
                await pilot.pause(0.1)
            text = screen_text(app, screen.query_one("#loss").region)
            assert "-0.0" not in text and "-0 " not in text
            rows = text.splitlines()
            axis = next(i for i, row in enumerate(rows) if "└" in row)
            ticks = rows[axis + 1].replace("│", " ").split()
            steps = {int(b) - int(a) for a, b in zip(ticks, ticks[1:])}
            assert len(ticks) >= 4 and len(steps) == 1 and steps <= {10, 20, 25, 50}, ticks   # round
        assert "1e-05" in text or "0.0001" in text                 # the log axis says values

    run_app(app, scenario)


def test_the_learning_rate_is_drawn_as_steps_from_the_first_step_record(tmp_path):
    run = write_fixed_run(tmp_path)
    lines = run.metrics_path.read_text().splitlines()
    run.metrics_path.write_text("\n".join(lines[:3]) + "\n")    # three steps of epoch 1, nothing else
    run.summary_path.unlink()
    app = KdtuiApp(tmp_path, start="watch", run_ref=RUN_ID, poll_interval=0.05)

    async def scenario(pilot):
        screen = app.screen
        await wait_for(pilot, lambda: len(screen.history.step_x) == 3, 10, "steps")
        plot = screen.query_one("#lr", SeriesPlot)
        await wait_for(pilot, lambda: plot.spec.series[0].xs, 5, "the paced redraw of the step panels")
        lr = plot.spec.series[0]
        assert (lr.xs, lr.ys) == ([0, 1], [0.1, 0.1])             # known during the first epoch
        accuracy = screen.query_one("#accuracy", SeriesPlot).spec
        assert "end of epoch 1" in accuracy.empty_text

    run_app(app, scenario)


def test_loss_view_keys_switch_step_epoch_scale_and_smoothing(tmp_path):
    app = watch_fixed_run(tmp_path)

    async def scenario(pilot):
        screen = await fixed_run_shown(pilot)
        loss = screen.query_one("#loss", SeriesPlot)
        assert [s.label for s in loss.spec.series] == [*TERMS, "total"]
        assert len(loss.spec.series[0].xs) == 60 and "per step, smoothing 0.9" in loss.border_title
        # Terms 1e-5 … 2 apart: the automatic scale is log10, so the small ones are readable.
        assert "auto: log10" in loss.border_title and loss.spec.log_y and max(loss.spec.series[4].ys) < -4
        await pilot.press("l")
        assert loss.border_title.endswith(", linear") and not loss.spec.log_y
        await pilot.press("l")      # log10 by choice
        assert loss.border_title.endswith(", log10") and max(loss.spec.series[4].ys) < -4
        await pilot.press("l")
        assert loss.spec.ylabel == "loss / max" and max(loss.spec.series[4].ys) == pytest.approx(1.0)
        await pilot.press("l", "e")
        assert "auto" in loss.border_title and "per epoch" in loss.border_title
        assert len(loss.spec.series[0].xs) == 6
        await pilot.press("e", "left_square_bracket", "left_square_bracket", "left_square_bracket")
        assert "smoothing 0," in loss.border_title
        assert loss.spec.series[4].ys == [math.log10(v) for v in screen.history.step_loss["AMD_N"]]  # unsmoothed
        await pilot.press("right_square_bracket")
        assert "smoothing 0.6," in loss.border_title
        await pilot.press("q")       # a finished run: quits without asking
        await wait_for(pilot, lambda: not app.is_running, 5, "the app to exit")

    run_app(app, scenario)


def test_scale_smoothing_and_weighted_view_are_remembered_across_starts(tmp_path):
    from kdtui.tui.settings import settings_path

    async def change_view(pilot):
        await fixed_run_shown(pilot)
        await pilot.press("l", "l", "right_square_bracket", "w")   # log10, smoothing 0.95, weighted
        await wait_for(pilot, lambda: settings_path().exists() and json.loads(settings_path().read_text())
                       ["dashboard"]["weighted"], 10, "the settings saved")

    run_app(watch_fixed_run(tmp_path), change_view)
    assert json.loads(settings_path().read_text())["dashboard"] == {
        "scale": "log10", "smoothing": 0.95, "weighted": True}
    assert settings_path().parent == tmp_path / "config"     # the test's, not the user's

    async def check_view(pilot):
        screen = await fixed_run_shown(pilot)
        loss = screen.query_one("#loss", SeriesPlot)
        assert (screen.scale, screen.smoothing, screen.weighted) == ("log10", 0.95, True)
        assert loss.border_title.endswith(", log10") and "smoothing 0.95" in loss.border_title

    run_app(KdtuiApp(tmp_path, start="watch", run_ref=RUN_ID, poll_interval=0.05), check_view)


def test_a_corrupt_settings_file_is_ignored_with_a_warning(tmp_path):
    from kdtui.tui.settings import settings_path

    settings_path().parent.mkdir(parents=True)
    settings_path().write_text("{not json")
    app = watch_fixed_run(tmp_path)
    messages = []
    notify = app.notify
    app.notify = lambda message, *args, **kwargs: (messages.append(message), notify(message, *args, **kwargs))

    async def scenario(pilot):
        screen = await fixed_run_shown(pilot)
        assert (screen.scale, screen.weighted) == ("auto", False)     # the defaults
        await pilot.press("w")
        await wait_for(pilot, lambda: settings_path().read_text().startswith("{\n"), 10, "the settings saved")

    run_app(app, scenario)
    assert any("not valid JSON" in message for message in messages)
    assert json.loads(settings_path().read_text())["dashboard"]["weighted"] is True   # rewritten


def test_zoom_to_the_last_part_of_the_x_range_and_a_cursor_reading_every_series(tmp_path):
    app = watch_fixed_run(tmp_path)

    async def scenario(pilot):
        screen = await fixed_run_shown(pilot)
        loss = screen.query_one("#loss", SeriesPlot)
        accuracy = screen.query_one("#accuracy", SeriesPlot)
        await pilot.press("z", "z")          # the last 25% of the steps (2 … 120)
        await pilot.pause()
        assert loss.zoom == accuracy.zoom == 0.25
        assert "last 25%" in screen_text(app, loss.region)
        assert "step 1" not in screen_text(app, loss.region)
        await pilot.press("c")               # the cursor, at the latest point
        await pilot.pause()
        readout = loss.readout()
        assert readout.x == 120 and [label for label, _ in readout.values] == [*TERMS, "total"]
        smoothed_total = loss.spec.series[-1].ys[-1]      # log10 scale: the readout says the loss
        assert readout.values[-1][1] == smoothed_total
        text = screen_text(app, loss.region)   # the values in the legend, the x above the curves
        assert "step 120" in text and f"total {10 ** smoothed_total:.3g}" in text, text
        assert accuracy.readout().x == 6 and accuracy.readout().values[1][1] == pytest.approx(76.13, abs=0.02)
        await pilot.press("less_than_sign", "less_than_sign")   # 20% of the shown range to the left
        await pilot.pause()
        assert loss.readout().x == 114      # 90.5 + 0.8 × (120 − 90.5) = 114.1: the nearest step
        await pilot.press("Z", "Z", "Z", "c")   # back to the whole range; the cursor off
        await pilot.pause()
        assert loss.zoom == 1.0 and loss.readout() is None and "last" not in screen_text(app, loss.region)

    run_app(app, scenario)


def test_escape_returns_from_a_dashboard_opened_from_the_runs_viewer(tmp_path):
    write_fixed_run(tmp_path)
    (tmp_path / "20261128-101600-broken").mkdir()  # no config.yaml: still opens
    app = KdtuiApp(tmp_path, start="runs", poll_interval=0.05)

    async def scenario(pilot):
        base = app.screen
        for run_id in (RUN_ID, "20261128-101600-broken"):
            app.open_dashboard(RunDir(tmp_path / run_id))
            await pilot.pause(0.2)
            assert isinstance(app.screen, DashboardScreen)
            await pilot.press("escape")
            await pilot.pause(0.1)
            assert app.screen is base

    run_app(app, scenario)


class FakeLaunch:
    """A launch of the app whose child trains ``run`` (never started: nothing trains)."""

    command = "run"

    def __init__(self, run: Path | None = None) -> None:
        self.run = run
        self.returncode = None
        self.signals: list[str] = []

    def announced(self):
        return [(self.run, "student")] if self.run else []

    latest_run_id = Launch.latest_run_id

    def output_tail(self) -> str:
        return ""

    def terminate(self) -> None:
        self.signals.append("TERM")

    def stop_at_epoch_end(self) -> None:
        self.signals.append("USR1")


def screen_text(app, region=None) -> str:
    """The screen as plain text (from its SVG screenshot), lines joined by newlines; only the
    cells of ``region`` (a widget's region) if given."""
    import html
    import re

    svg = app.export_screenshot()
    rows: dict[int, list[str]] = {}
    for x, y, text in re.findall(r'<text class="[^"]+" x="([\d.]+)" y="([\d.]+)" textLength="[\d.]+" '
                                 r'clip-path="url\(#terminal-[\w-]*line-\d+\)">([^<]*)</text>', svg):
        row = rows.setdefault(round((float(y) - 20) / 24.4), [" "] * 400)
        for i, char in enumerate(html.unescape(text).replace("\xa0", " ")):
            row[round(float(x) / 12.2) + i] = char
    if region is not None:
        return "\n".join("".join(rows[r][region.x:region.right]).strip()
                         for r in sorted(rows) if region.y <= r < region.bottom)
    return "\n".join("".join(rows[r]).rstrip() for r in sorted(rows))


def test_the_palettes_quit_asks_like_ctrl_q_while_a_run_started_here_trains(tmp_path):
    app = watch_fixed_run(tmp_path)

    async def scenario(pilot):
        screen = app.screen
        app.launches.append(FakeLaunch(tmp_path / RUN_ID))   # as if the app trained it
        quit_command = next(c for c in app.get_system_commands(screen) if c.title == "Quit")
        await quit_command.callback()
        await wait_for(pilot, lambda: isinstance(app.screen, QuitScreen), 5, "the question")
        await pilot.press("escape")
        assert app.screen is screen and app.is_running
        await pilot.press("ctrl+q")
        assert isinstance(app.screen, QuitScreen)
        await pilot.press("s")                               # stop: signalled, then the app waits
        await wait_for(pilot, lambda: app.launches[0].signals == ["TERM"], 5, "the stop")
        app.launches[0].returncode = 143
        await wait_for(pilot, lambda: not app.is_running, 5, "the app to exit")

    run_app(app, scenario)


def test_help_lists_the_keys_grouped_by_screen_the_current_one_first(tmp_path):
    from kdtui.tui.screens.help import HelpScreen

    app = watch_fixed_run(tmp_path)

    async def scenario(pilot):
        await pilot.pause(0.3)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.pause(0.2)
        lines = [line.strip("│ ") for line in screen_text(app, app.screen.query_one("#help-dialog").region).splitlines()]
        titles = [line for line in lines if line.startswith(("Dashboard", "Home", "Runs viewer", "Everywhere"))]
        assert titles[:3] == ["Dashboard (this screen)", "Home (launcher)", "Runs viewer"]
        assert "w     Weighted" in lines and "q     Back / Quit" in lines
        await pilot.press("question_mark")
        assert isinstance(app.screen, DashboardScreen)

    run_app(app, scenario)


def test_the_palette_offers_the_screens_key_actions(tmp_path):
    app = watch_fixed_run(tmp_path)

    async def scenario(pilot):
        screen = await fixed_run_shown(pilot)
        commands = {c.title: c for c in app.get_system_commands(screen)}
        assert {"Stop", "Step/epoch", "Scale", "Weighted", "Resume"} <= set(commands)
        assert commands["Weighted"].help == "dashboard: key w"
        await commands["Weighted"].callback()
        assert screen.weighted
        app.open_runs()
        await pilot.pause(0.5)
        titles = {c.title for c in app.get_system_commands(app.screen)}
        assert {"Mark", "Filter", "Sort", "Export CSV", "Back"} <= titles

    run_app(app, scenario)


@pytest.mark.parametrize("size", [(120, 40), (80, 24)], ids=["120x40", "80x24"])
def test_the_quit_question_wraps_so_the_watch_hint_shows(tmp_path, size):
    app = watch_fixed_run(tmp_path)
    run_id = "20261128-101500-a_rather_long_run_name_to_wrap"

    async def scenario(pilot):
        app.launches.append(FakeLaunch(tmp_path / run_id))
        await pilot.press("q")                               # the first screen: quit, asking first
        assert isinstance(app.screen, QuitScreen)
        await pilot.pause(0.2)
        detail = app.screen.query_one("#detail")
        text = " ".join(screen_text(app, detail.region).split())
        assert text.endswith(f"watch later with: kdtui watch {run_id}")   # wrapped, not cut
        await pilot.press("l")                               # leave it running
        await wait_for(pilot, lambda: not app.is_running, 5, "the app to exit")

    run_app(app, scenario, size=size)


def test_q_and_escape_go_back_one_level_from_a_dashboard_opened_from_the_runs_viewer(tmp_path):
    write_fixed_run(tmp_path)
    app = KdtuiApp(tmp_path, start="runs", poll_interval=0.05)

    async def scenario(pilot):
        base = app.screen
        for key in ("q", "escape"):
            app.open_dashboard(RunDir(tmp_path / RUN_ID))
            await pilot.pause(0.2)
            await pilot.press(key)
            await pilot.pause(0.1)
            assert app.screen is base and app.is_running
        await pilot.press("escape")                          # the first screen: Esc does not quit
        assert app.is_running
        await pilot.press("q")                               # nothing started here: quits at once
        await wait_for(pilot, lambda: not app.is_running, 5, "the app to exit")

    run_app(app, scenario)


def test_resumed_from_the_runs_viewer_then_back_and_q_asks_first(tmp_path, monkeypatch):
    run = write_fixed_run(tmp_path)
    summary = run.read_summary()
    run.write_summary({**summary, "status": "stopped", "epochs_done": 6})
    launches = []

    def fake_start(args, root):
        launches.append(FakeLaunch(run.path))
        return launches[-1]

    monkeypatch.setattr("kdtui.tui.app.Launch.start", fake_start)
    app = KdtuiApp(tmp_path, start="runs", poll_interval=0.05)

    async def scenario(pilot):
        base = app.screen
        await wait_for(pilot, lambda: base.table.run_rows, 5, "the runs")
        await pilot.press("R")                               # resume: its dashboard opens
        await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen), 5, "the dashboard")
        await pilot.press("escape")
        assert app.screen is base
        await pilot.press("q")
        assert isinstance(app.screen, QuitScreen) and app.is_running
        await pilot.press("escape")
        assert app.screen is base

    run_app(app, scenario)


def test_s_mid_epoch_asks_and_can_stop_at_the_end_of_the_epoch(tmp_path):
    import socket

    from kdtui.store.liveness import process_start_ticks
    from kdtui.tui.screens.stop import StopScreen

    run = write_fixed_run(tmp_path)
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        lines = run.metrics_path.read_text().splitlines()
        lines.append(json.dumps({"event": "step", "epoch": 7, "step": 8, "steps_per_epoch": 20,
                                 "global_step": 128, "lr": 0.1, "loss": {"CE": 0.3, "total": 0.3},
                                 "system": {"cpu_percent": 37.4, "ram_used_gb": 12.34, "ram_total_gb": 62.8,
                                            "process_rss_gb": 1.1, "gpu0_util_percent": 85.0,
                                            "gpu0_mem_used_gb": 10.04, "gpu0_mem_total_gb": 80.0}}))
        run.metrics_path.write_text("\n".join(lines) + "\n")
        summary = run.read_summary()
        run.write_summary({**summary, "status": "running", "epochs": 8, "pid": sleeper.pid,
                           "host": socket.gethostname(), "pid_start": process_start_ticks(sleeper.pid)})
        app = KdtuiApp(tmp_path, start="watch", run_ref=RUN_ID, poll_interval=0.05)

        async def scenario(pilot):
            screen = app.screen
            await wait_for(pilot, lambda: screen.history.last_step is not None, 10, "the step")
            # While it trains, the header says how the machine is used (system metrics).
            screen.update_header()
            header = str(screen.query_one("#header").render())
            assert "CPU 37%  RAM 12.3/62.8 GB (run 1.1)  GPU0 85% 10.0/80.0 GB" in header
            launch = screen.launch = FakeLaunch(run.path)
            await pilot.press("s")
            assert isinstance(app.screen, StopScreen)
            text = " ".join(screen_text(app, app.screen.query_one("#dialog").region).split())
            assert "Epoch 7 is at step 8 of 20" in text and "checkpoint of epoch 6" in text
            await pilot.press("escape")
            assert launch.signals == []
            await pilot.press("s", "e")                      # at the end of the epoch: SIGUSR1
            assert launch.signals == ["USR1"]
            await pilot.press("s", "s")                      # now: SIGTERM
            assert launch.signals == ["USR1", "TERM"]

        run_app(app, scenario)
    finally:
        sleeper.kill()
        sleeper.wait()


def test_text_typed_at_the_delete_question_deletes_nothing(tmp_path):
    # A shell command typed into the wrong window must not answer "yes" by accident.
    write_fixed_run(tmp_path)
    app = KdtuiApp(tmp_path, start="runs", poll_interval=0.05)

    async def scenario(pilot):
        await pilot.pause(0.5)
        await pilot.press("k", "d")                       # "d" of "kdtui" asks to delete the run
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press(*"tui watch quickstart", "enter")
        await pilot.pause(0.5)
        assert not isinstance(app.screen, ConfirmScreen)  # dismissed by the typing, not a yes
        assert (tmp_path / RUN_ID).is_dir()
        await pilot.press("q")
        await wait_for(pilot, lambda: not app.is_running, 5, "q to quit the runs viewer")

    run_app(app, scenario)


def test_dashboard_stacks_panels_at_80x24(tmp_path):
    app = watch_fixed_run(tmp_path)

    async def scenario(pilot):
        screen = await fixed_run_shown(pilot)
        assert screen.has_class("-narrow")
        assert screen.query_one("#loss").region.width >= 76   # one column (beside the scrollbar)
        await pilot.resize_terminal(160, 50)
        await pilot.pause(0.2)
        assert not screen.has_class("-narrow") and screen.query_one("#loss").region.width < 120

    run_app(app, scenario, size=(80, 24))


@pytest.mark.parametrize("size", [(120, 40), (80, 24)], ids=["120x40", "80x24"])
def test_dashboard_snapshot(tmp_path, snap_compare, monkeypatch, size):
    monkeypatch.chdir(tmp_path)
    app = watch_fixed_run(tmp_path / "runs")

    async def settle(pilot):
        await fixed_run_shown(pilot)
        await pilot.pause(0.3)

    assert snap_compare(app, terminal_size=size, run_before=settle)


# --- live runs: real child processes on the tiny shapes preset ------------------------------

def tiny_preset(tmp_path: Path, epochs: int = 40) -> Path:
    preset = tmp_path / "live.yaml"
    preset.write_text(yaml.safe_dump({
        "description": "live dashboard test", "data": {"dataset": "shapes", "train_size": 128, "test_size": 64},
        "student": {"arch": "wrn_10_1"}, "loss": {"ce": {"weight": 1.0}},
        "train": {"epochs": epochs, "batch_size": 32, "eval_batch_size": 64, "lr": 0.05, "log_every": 1,
                  "device": "cpu"}}))
    return preset


def wait_process(process, timeout=60):
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        raise


def test_app_started_run_updates_live_and_stops(tmp_path):
    root = tmp_path / "runs"
    app = KdtuiApp(root, start="run", run_args=[str(tiny_preset(tmp_path))], poll_interval=0.1)

    async def scenario(pilot):
        screen = app.screen
        await wait_for(pilot, lambda: len(screen.history.epochs) >= 2, 120, "two epochs")
        shown = len(screen.history.epochs)
        await wait_for(pilot, lambda: len(screen.history.epochs) > shown, 60, "a further epoch")
        assert "running" in str(screen.query_one("#header").render())
        assert screen.query_one("#accuracy", SeriesPlot).spec.series[1].xs[-1] == len(screen.history.epochs)
        await pilot.press("s")
        if isinstance(app.screen, StopScreen):     # mid-epoch: it asks; stop now
            await pilot.press("s")
        launch = app.launches[0]
        await wait_for(pilot, lambda: launch.returncode is not None, 60, "the run to stop")
        assert launch.returncode == 128 + signal.SIGTERM
        await wait_for(pilot, lambda: screen.summary is not None and screen.summary.status == "stopped", 10, "stopped")
        assert "stopped" in str(screen.query_one("#header").render())

    run_app(app, scenario)
    summary = RunDir(next(root.glob("2*"))).read_summary()
    assert summary["status"] == "stopped" and (next(root.glob("2*")) / "checkpoints" / "last.pt").exists()


def test_quit_with_a_run_active_can_leave_it_running(tmp_path):
    root = tmp_path / "runs"
    app = KdtuiApp(root, start="run", run_args=[str(tiny_preset(tmp_path))], poll_interval=0.1)

    async def scenario(pilot):
        screen = app.screen
        await wait_for(pilot, lambda: screen.run is not None and screen.history.epochs, 120, "an epoch")
        await pilot.press("q")
        assert isinstance(app.screen, QuitScreen)
        await pilot.press("escape")                 # cancel: still on the dashboard
        assert isinstance(app.screen, DashboardScreen)
        await pilot.press("ctrl+q")                 # Textual's own quit key asks too
        assert isinstance(app.screen, QuitScreen)
        await pilot.press("escape")
        await pilot.press("q", "l")                  # leave it running
        await wait_for(pilot, lambda: not app.is_running, 10, "the app to exit")

    run_app(app, scenario)
    launch = app.launches[0]
    try:
        assert launch.returncode is None            # the run outlives the app
    finally:
        launch.terminate()
        assert wait_process(launch.process) == 128 + signal.SIGTERM
    assert RunDir(next(root.glob("2*"))).read_summary()["status"] == "stopped"


def test_quit_with_a_run_active_can_stop_it(tmp_path):
    root = tmp_path / "runs"
    app = KdtuiApp(root, start="run", run_args=[str(tiny_preset(tmp_path))], poll_interval=0.1)

    async def scenario(pilot):
        screen = app.screen
        await wait_for(pilot, lambda: screen.run is not None and screen.history.epochs, 120, "an epoch")
        await pilot.press("q", "s")
        await wait_for(pilot, lambda: not app.is_running, 60, "the app to exit after stopping")

    run_app(app, scenario)
    assert app.launches[0].returncode == 128 + signal.SIGTERM
    assert RunDir(next(root.glob("2*"))).read_summary()["status"] == "stopped"


def test_watch_follows_a_headless_run_of_another_process_and_stops_it(tmp_path):
    root = tmp_path / "runs"
    process = subprocess.Popen(
        [sys.executable, "-m", "kdtui", "run", str(tiny_preset(tmp_path)), "--headless", "--runs-dir", str(root)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while not list(root.glob("2*/summary.json")) and time.time() < deadline:
            time.sleep(0.2)
        run_dir = next(root.glob("2*"))
        app = KdtuiApp(root, start="watch", run_ref=run_dir.name, poll_interval=0.1)

        async def scenario(pilot):
            screen = app.screen
            await wait_for(pilot, lambda: len(screen.history.epochs) >= 1, 120, "an epoch")
            seen = len(screen.history.epochs)
            await wait_for(pilot, lambda: len(screen.history.epochs) > seen, 60, "the next epoch")
            await pilot.press("s")  # SIGTERM to the pid recorded in summary.json
            if isinstance(app.screen, StopScreen):  # mid-epoch: it asks; stop now
                await pilot.press("s")
            await wait_for(pilot, lambda: screen.summary is not None and screen.summary.status == "stopped", 60, "stopped")

        run_app(app, scenario)
        assert wait_process(process) == 128 + signal.SIGTERM
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_a_run_that_cannot_start_shows_why(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"data": {"dataset": "imagefolder", "root": str(tmp_path / "nope")},
                                   "student": {"arch": "wrn_10_1"}, "loss": {"ce": 1.0},
                                   "train": {"epochs": 1, "device": "cpu"}}))
    app = KdtuiApp(tmp_path / "runs", start="run", run_args=[str(bad)], poll_interval=0.1)

    async def scenario(pilot):
        screen = app.screen
        await wait_for(pilot, lambda: screen.launch_error is not None, 90, "the launch error")
        assert "does not exist" in screen.launch_error
        assert "failed" in str(screen.query_one("#header").render())
        assert any("does not exist" in line for line in screen.query_one("#log").lines)
        await pilot.press("q")   # nothing is running: quits at once

    run_app(app, scenario)
    assert not list((tmp_path / "runs").glob("2*"))
    assert os.path.isdir(tmp_path / "runs" / ".launches")
