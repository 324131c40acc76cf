"""The runs viewer: listing (broken folders included), filter, sort, marks and config diff,
delete with confirmation, refusing to delete a live run, CSV export, resume, 80×24 and an
SVG snapshot."""

from __future__ import annotations

import asyncio
import csv
import json
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
import yaml
from textual.screen import Screen

import kdtui.tui.screens.runs as runs_module
import kdtui.tui.widgets.runs_table as runs_table_module
from kdtui.losses import loss_label
from kdtui.store import RunDir, describe_config
from kdtui.tui.app import KdtuiApp
from kdtui.tui.screens.confirm import ConfirmScreen
from kdtui.tui.screens.runs import RunsScreen
from kdtui.tui.widgets.series_plot import SeriesPlot

FINISHED = "20261121-101500-kd_wrn16_1"
STOPPED = "20261122-111500-amd_wrn16_1"
FAILED = "20261123-121500-amd_lr05"
BROKEN = "20261124-131500-empty"
CORRUPT = "20261125-141500-badsummary"
TEACHER = "20261120-090000-teacher_wrn16_3"


def run_config(preset: str, teacher: bool = True, amd: bool = False, lr: float = 0.1,
               epochs: int = 6) -> dict:
    loss = {"ce": {"weight": 0.1 if teacher else 1.0, "label_smoothing": 0.0}}
    if teacher:
        loss["kd"] = {"weight": 0.9, "temperature": 4.0}
    if amd:
        loss["amd"] = {"weight": 5000.0, "margin": 1.35, "local": True}
    return {"student": {"arch": "wrn_16_1" if teacher else "wrn_16_3"}, "preset": preset,
            "description": f"{preset} on shapes",
            "data": {"dataset": "shapes", "train_size": 192, "test_size": 96, "seed": 0},
            "teacher": {"checkpoint": TEACHER, "arch": "wrn_16_3"} if teacher else None,
            "loss": loss,
            "train": {"epochs": epochs, "batch_size": 32, "optimizer": "sgd", "lr": lr,
                      "schedule": "cosine", "device": "cpu"}}


def write_run(root: Path, run_id: str, config: dict | None = None, epochs_done: int = 0,
              status: str | None = None, peak: float = 80.0, **summary) -> RunDir:
    """A run folder written by hand: config.yaml, metrics.jsonl and summary.json, with
    deterministic curves (no clock, nothing that depends on where the test runs). The summary
    carries the config's description with the registry's method labels, as a run writes it."""
    run = RunDir(root / run_id)
    (run.path / "checkpoints").mkdir(parents=True)
    if config is not None:
        run.write_config(config)
    records = []
    for epoch in range(1, epochs_done + 1):
        acc = round(peak * (1 - 0.55 ** epoch), 2)
        records.append({"event": "step", "epoch": epoch, "step": 1, "steps_per_epoch": 6,
                        "global_step": epoch * 6, "lr": 0.1, "loss": {"CE": 1.0, "total": 1.0},
                        "img_per_s": 100.0, "time": 1000.0 + epoch})
        records.append({"event": "epoch", "epoch": epoch, "epochs": 6, "lr": 0.1,
                        "loss": {"CE": round(2.0 / epoch, 4), "total": round(2.5 / epoch, 4)},
                        "train_acc": acc + 2, "test_acc": acc, "best_test_acc": acc,
                        "best_epoch": epoch, "img_per_s": 100.0, "time_s": 7.5,
                        "time": 1000.0 + epoch})
    run.metrics_path.write_text("".join(json.dumps(r) + "\n" for r in records))
    if status is not None:
        accs = [r["test_acc"] for r in records if r["event"] == "epoch"]
        described = {"describe": describe_config(config, loss_label).to_dict()} if config is not None else {}
        run.write_summary({"status": status, "run_id": run_id, "epochs": 6, "epochs_done": epochs_done,
                           "device": "cpu", "best_test_acc": max(accs) if accs else None,
                           "best_epoch": accs.index(max(accs)) + 1 if accs else None,
                           "final_test_acc": accs[-1] if accs else None,
                           "wall_time_s": 7.5 * epochs_done, **described, **summary})
    return run


def write_store(root: Path) -> Path:
    """Six runs: finished (a teacher and a student), stopped, failed, an empty folder and
    one whose summary.json is corrupt."""
    write_run(root, TEACHER, run_config("teacher_wrn16_3", teacher=False), 6, "finished", peak=88.0,
              student_params=690_000)
    write_run(root, FINISHED, run_config("kd_wrn16_1"), 6, "finished", peak=80.0,
              student_params=175_000, teacher_params=690_000, teacher_id=TEACHER)
    write_run(root, STOPPED, run_config("amd_wrn16_1", amd=True), 3, "stopped", peak=83.0)
    write_run(root, FAILED, run_config("amd_lr05", amd=True, lr=0.5), 2, "failed", peak=60.0,
              error="the loss became NaN at step 40; lower train.lr")
    (root / BROKEN).mkdir()
    write_run(root, CORRUPT, run_config("kd_wrn16_1"), 1)
    (root / CORRUPT / "summary.json").write_text("{not json")
    return root


def run_app(app: KdtuiApp, scenario, size=(120, 40)) -> None:
    async def main():
        async with app.run_test(size=size) as pilot:
            await settle(pilot)
            await scenario(pilot)
            await settle(pilot)
    asyncio.run(main())


async def settle(pilot) -> None:
    """Until the workers (listing, detail, comparison) are done and their results shown."""
    for _ in range(4):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()


def notifications(app: KdtuiApp) -> list[str]:
    """Records the messages of app.notify (and still shows them)."""
    messages: list[str] = []
    show = app.notify

    def record(message, *args, **kwargs):
        messages.append(message)
        return show(message, *args, **kwargs)

    app.notify = record
    return messages


async def until(pilot, condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for the app"
        await pilot.pause(0.05)


async def filtered(pilot, screen: RunsScreen) -> None:
    """Until the filter typed so far is applied (the table is redrawn once typing pauses)."""
    await until(pilot, lambda: not screen.table.filter_pending)


def names(screen: RunsScreen) -> list[str]:
    return [row.name for row in screen.table.shown]


def cursor_to(screen: RunsScreen, run_id: str) -> None:
    screen.table.move_cursor(row=screen.table.get_row_index(run_id))


def test_lists_every_run_including_broken_ones(tmp_path):
    app = KdtuiApp(write_store(tmp_path / "runs"), start="runs")

    async def scenario(pilot):
        screen = app.screen
        assert isinstance(screen, RunsScreen)
        rows = {row.id: row for row in screen.table.shown}
        assert list(rows) == [CORRUPT, BROKEN, FAILED, STOPPED, FINISHED, TEACHER]  # newest first
        assert screen.table.row_count == 6
        assert rows[BROKEN].status == "broken" and rows[CORRUPT].status == "broken"  # unreadable summary
        assert rows[FAILED].status == "failed" and rows[STOPPED].status == "stopped"
        cells = [str(cell) for cell in screen.table.get_row(FINISHED)]
        assert cells == [" ", "kd_wrn16_1", "finished", "shapes", "wrn_16_3 → wrn_16_1", "ce+kd",
                         "77.79", "77.79", "6/6", "0:45", "2026-11-21"]
        # The detail pane follows the highlight, broken folders included.
        for run_id in (BROKEN, CORRUPT, FAILED):
            cursor_to(screen, run_id)
            await settle(pilot)
            assert screen.detail_for == run_id
        assert "the loss became NaN" in str(screen.query_one("#runs-summary").render())
        assert "lr: 0.5" in str(screen.query_one("#runs-config").render())
        assert screen.query_one("#runs-acc", SeriesPlot).spec.series[0].ys == [27.0, 41.85]

    run_app(app, scenario)


def test_filter_by_text(tmp_path):
    app = KdtuiApp(write_store(tmp_path / "runs"), start="runs")

    async def scenario(pilot):
        screen = app.screen
        await pilot.press("slash")
        assert screen.query_one("#runs-filter").has_focus
        await pilot.press(*"amd")
        await filtered(pilot, screen)
        assert names(screen) == ["amd_lr05", "amd_wrn16_1"]
        await pilot.press("space", *"fail")   # every word must match
        await filtered(pilot, screen)
        assert names(screen) == ["amd_lr05"]
        assert "1 of 6" in str(screen.table.border_title)
        await pilot.press("enter")            # back to the table; the filter stays
        assert screen.table.has_focus and names(screen) == ["amd_lr05"]
        await pilot.press("slash", "ctrl+a", "ctrl+k", *"nothing-like-this")
        await filtered(pilot, screen)
        assert names(screen) == [] and screen.table.row_count == 0

    run_app(app, scenario)


def test_typing_a_filter_redraws_the_table_once_typing_pauses(tmp_path, monkeypatch):
    # A long pause, so that no redraw can come from the timer while the keys are typed.
    monkeypatch.setattr(runs_table_module, "FILTER_DELAY_S", 60.0)
    app = KdtuiApp(write_store(tmp_path / "runs"), start="runs")

    async def scenario(pilot):
        screen = app.screen
        fills: list[str] = []
        table = screen.table
        fill = table.fill
        table.fill = lambda: (fills.append(table.filter_text), fill())
        await pilot.press("slash", *"amd fail")
        assert fills == [] and screen.table.filter_pending and len(names(screen)) == 6
        await pilot.press("enter")            # Enter applies it at once
        assert fills == ["amd fail"] and not screen.table.filter_pending
        assert names(screen) == ["amd_lr05"] and screen.table.has_focus

    run_app(app, scenario)


def test_sort_by_key_and_by_header_click(tmp_path):
    app = KdtuiApp(write_store(tmp_path / "runs"), start="runs")

    async def scenario(pilot):
        screen = app.screen
        await pilot.press("o")                # wraps round from "started" to "name", A→Z
        assert names(screen) == ["amd_lr05", "amd_wrn16_1", "badsummary", "empty", "kd_wrn16_1",
                                 "teacher_wrn16_3"]
        await pilot.press("O")
        assert names(screen)[0] == "teacher_wrn16_3"
        await pilot.press(*"ooooo")           # name → status → dataset → pair → method → best
        assert "sorted by best ↓" in str(screen.table.border_title)
        # Highest first; runs without an accuracy last, in either direction.
        assert names(screen)[:4] == ["teacher_wrn16_3", "kd_wrn16_1", "amd_wrn16_1", "amd_lr05"]
        await pilot.press("O")
        # The broken badsummary's best comes from its one recorded epoch.
        assert names(screen)[:5] == ["badsummary", "amd_lr05", "amd_wrn16_1", "kd_wrn16_1", "teacher_wrn16_3"]
        assert names(screen)[5:] == ["empty"]
        # A click on a header sorts by that column; a second click reverses it.
        await pilot.click("#runs-table", offset=(5, 1))
        assert "sorted by name ↑" in str(screen.table.border_title)
        await pilot.click("#runs-table", offset=(5, 1))
        assert "sorted by name ↓" in str(screen.table.border_title)
        assert names(screen)[0] == "teacher_wrn16_3"

    run_app(app, scenario)


def test_mark_two_runs_overlays_curves_and_diffs_only_differing_keys(tmp_path):
    app = KdtuiApp(write_store(tmp_path / "runs"), start="runs")

    async def scenario(pilot):
        screen = app.screen
        cursor_to(screen, STOPPED)
        await pilot.press("space")            # marks and moves down to FINISHED
        await pilot.press("space")
        await settle(pilot)
        assert screen.table.marked == [STOPPED, FINISHED]
        assert str(screen.table.get_row(STOPPED)[0]) == "●"
        assert screen.query_one("#runs-detail").current == "runs-compare"
        overlay = screen.query_one("#runs-overlay", SeriesPlot)
        assert [s.label for s in overlay.spec.series] == ["amd_wrn16_1", "kd_wrn16_1"]
        assert [len(s.xs) for s in overlay.spec.series] == [3, 6]
        assert str(overlay.border_title).startswith("test accuracy % per epoch")
        # m: the next metric overlaid (train accuracy, the total loss, the shared terms, the LR).
        titles = []
        for _ in range(5):
            await pilot.press("m")
            titles.append(str(overlay.border_title).split(" per epoch")[0])
        assert titles == ["train accuracy %", "total loss", "loss CE", "learning rate", "test accuracy %"]
        await pilot.press("m", "m")
        assert overlay.spec.series[1].ys[0] == 2.5            # kd_wrn16_1's total loss of epoch 1
        await pilot.press("m", "m", "m")
        diff = screen.query_one("#runs-diff")
        keys = [str(diff.get_row_at(i)[0]) for i in range(diff.row_count)]
        assert keys == ["preset", "description", "loss.amd.weight", "loss.amd.margin",
                        "loss.amd.local"]
        assert [str(v) for v in diff.get_row("loss.amd.weight")[1:]] == ["5000.0", "—"]
        await pilot.press("D")                # every key
        assert diff.row_count > 15
        assert "all keys" in str(screen.query_one("#runs-diff-panel").border_title)
        await pilot.press("D")
        assert diff.row_count == 5
        # Unmarking one leaves a single run: back to the detail of the highlighted run.
        cursor_to(screen, STOPPED)
        await pilot.press("space")
        await settle(pilot)
        assert screen.table.marked == [FINISHED]
        assert screen.query_one("#runs-detail").current == "runs-single"

    run_app(app, scenario)


def test_delete_asks_first_yes_deletes_and_no_keeps(tmp_path):
    root = write_store(tmp_path / "runs")
    app = KdtuiApp(root, start="runs")

    async def scenario(pilot):
        screen = app.screen
        cursor_to(screen, FAILED)
        await pilot.press("d")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        await settle(pilot)
        assert app.screen is screen and (root / FAILED).is_dir()
        await pilot.press("d")
        await pilot.click("#yes")
        await settle(pilot)
        assert not (root / FAILED).exists()
        assert FAILED not in [row.id for row in screen.table.shown] and screen.table.row_count == 5
        cursor_to(screen, BROKEN)             # a broken folder can go too
        await pilot.press("d", "y")
        await settle(pilot)
        assert not (root / BROKEN).exists()

    run_app(app, scenario)


def test_delete_runs_in_a_worker_and_the_screen_stays_responsive(tmp_path, monkeypatch):
    root = write_store(tmp_path / "runs")
    app = KdtuiApp(root, start="runs")
    messages = notifications(app)
    release = threading.Event()
    threads: list[bool] = []
    delete = runs_module.delete_run

    def slow_delete(runs_root, run):
        threads.append(threading.current_thread() is threading.main_thread())
        release.wait(30)                      # a folder of large checkpoints
        delete(runs_root, run)

    monkeypatch.setattr(runs_module, "delete_run", slow_delete)

    async def scenario(pilot):
        screen = app.screen
        cursor_to(screen, STOPPED)
        await pilot.press("d", "y")
        await until(pilot, lambda: bool(threads))
        # The event loop is free while the folder goes: keys still work.
        assert threads == [False] and app.screen is screen
        await pilot.press("d")                # the same run again: refused while deleting
        assert app.screen is screen and "is being deleted" in messages[-1]
        await pilot.press("o")
        assert "sorted by name" in str(screen.table.border_title)
        release.set()
        await settle(pilot)
        assert not (root / STOPPED).exists()
        assert STOPPED not in [row.id for row in screen.table.run_rows] and screen.table.row_count == 5
        assert messages[-1] == f"Deleted {STOPPED}."

    try:
        run_app(app, scenario)
    finally:
        release.set()


def test_a_failed_delete_is_reported(tmp_path, monkeypatch):
    root = write_store(tmp_path / "runs")
    app = KdtuiApp(root, start="runs")
    messages = notifications(app)

    def refuse(runs_root, run):
        raise runs_module.KdtuiError(f"Could not delete {run.path}: Permission denied.")

    monkeypatch.setattr(runs_module, "delete_run", refuse)

    async def scenario(pilot):
        screen = app.screen
        cursor_to(screen, FAILED)
        await pilot.press("d", "y")
        await settle(pilot)
        assert app.is_running and app.screen is screen
        assert "Permission denied" in messages[-1]
        assert (root / FAILED).is_dir() and FAILED in [row.id for row in screen.table.run_rows]
        assert not screen.deleting

    run_app(app, scenario)


def test_delete_refuses_a_live_run(tmp_path):
    root = tmp_path / "runs"
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        write_run(root, "20261126-100000-live", run_config("kd_wrn16_1"), 1, "running",
                  pid=sleeper.pid, host=socket.gethostname())
        app = KdtuiApp(root, start="runs")
        messages = notifications(app)

        async def scenario(pilot):
            screen = app.screen
            assert screen.table.shown[0].status == "running"
            await pilot.press("d")
            await pilot.pause()
            assert app.screen is screen   # no question asked
            assert any("still running" in message for message in messages)

        run_app(app, scenario)
        assert (root / "20261126-100000-live").is_dir()
    finally:
        sleeper.kill()
        sleeper.wait()


def test_export_marked_runs_or_the_highlighted_one_to_csv(tmp_path):
    root = write_store(tmp_path / "runs")
    app = KdtuiApp(root, start="runs")
    messages = notifications(app)

    async def scenario(pilot):
        screen = app.screen
        cursor_to(screen, FINISHED)
        await pilot.press("e")
        await settle(pilot)
        first = list((root / "exports").glob("*.csv"))
        assert len(first) == 1
        rows = list(csv.DictReader(first[0].open()))
        assert [r["run"] for r in rows] == [FINISHED] * 6
        assert [float(r["test_acc"]) for r in rows][:2] == [36.0, 55.8]
        assert float(rows[1]["loss_total"]) == 1.25
        first[0].unlink()
        cursor_to(screen, FAILED)
        await pilot.press("space", "space")   # FAILED and STOPPED
        await pilot.press("e")
        await settle(pilot)
        rows = list(csv.DictReader(next((root / "exports").glob("*.csv")).open()))
        assert [r["run"] for r in rows] == [FAILED] * 2 + [STOPPED] * 3
        assert any("5 epoch rows of 2 runs" in message for message in messages)
        # A failed write is reported, not raised: here "exports" is a file, not a folder.
        for path in (root / "exports").iterdir():
            path.unlink()
        (root / "exports").rmdir()
        (root / "exports").write_text("")
        await pilot.press("e")
        await settle(pilot)
        assert app.is_running and app.screen is screen
        assert len(messages) == 3 and "exports" in messages[-1]

    run_app(app, scenario)


def test_resume_dispatches_stopped_runs_and_refuses_finished_ones(tmp_path):
    app = KdtuiApp(write_store(tmp_path / "runs"), start="runs")
    resumed: list[str] = []
    opened: list[Path] = []
    app.resume_run = resumed.append
    app.open_dashboard = lambda run: opened.append(run.path)
    messages = notifications(app)

    async def scenario(pilot):
        screen = app.screen
        cursor_to(screen, STOPPED)
        await pilot.press("R")
        assert resumed == [STOPPED]
        cursor_to(screen, FINISHED)
        await pilot.press("R")
        await pilot.pause()
        assert resumed == [STOPPED]
        assert any("only a stopped, failed or crashed run" in message for message in messages)
        await pilot.press("enter")
        assert opened == [app.runs_root / FINISHED]

    run_app(app, scenario)


LONG = "20261126-101500-cifar100_wrn40_2_to_wrn16_1_amd_gl_seed2"


@pytest.mark.parametrize("size", [(120, 40), (160, 40)], ids=["120", "160"])
def test_long_names_give_way_so_the_started_column_shows_whole(tmp_path, size):
    from test_tui_dashboard import screen_text

    root = write_store(tmp_path / "runs")
    config = run_config("cifar100_wrn40_2_to_wrn16_1_amd_gl_seed2", amd=True)
    config["data"]["dataset"] = "tiny_imagenet"
    config["teacher"]["arch"], config["student"]["arch"] = "resnet32x4", "shufflenet_v2"
    write_run(root, LONG, config, 6, "finished", peak=75.6)
    app = KdtuiApp(root, start="runs")

    async def scenario(pilot):
        table = app.screen.table
        lines = screen_text(app, table.region).splitlines()
        header, first = lines[1], lines[2]
        assert header.rstrip("│ ").endswith("started ↓") and first.rstrip("│ ").endswith("2026-11-26")
        assert "73.51" in first and "finished" in first
        assert ("cifar100_wr…" in first) == (size[0] == 120)       # cut only where it must be

    run_app(app, scenario, size=size)


def test_resume_reads_the_status_again_and_refuses_a_stale_one(tmp_path):
    root = write_store(tmp_path / "runs")
    app = KdtuiApp(root, start="runs")
    resumed: list[str] = []
    app.resume_run = resumed.append
    messages = notifications(app)

    async def scenario(pilot):
        screen = app.screen
        cursor_to(screen, STOPPED)
        assert screen.table.highlighted().status == "stopped"
        # Meanwhile the run was resumed elsewhere and finished: the listing does not know yet.
        RunDir(root / STOPPED).write_summary({"status": "finished", "run_id": STOPPED, "epochs": 3,
                                              "epochs_done": 3})
        await pilot.press("R")
        await settle(pilot)
        assert resumed == []
        assert any("amd_wrn16_1 is finished" in message for message in messages)
        # The list was read again: the row says so now.
        assert {row.id: row.status for row in screen.table.run_rows}[STOPPED] == "finished"

    run_app(app, scenario)


def test_the_list_is_read_again_when_the_screen_is_shown_again(tmp_path):
    root = write_store(tmp_path / "runs")
    app = KdtuiApp(root, start="runs")

    async def scenario(pilot):
        screen = app.screen
        cursor_to(screen, FAILED)
        await pilot.press("space")            # marks survive the re-read
        await app.push_screen(Screen())       # e.g. a dashboard
        write_run(root, "20261127-080000-new", run_config("kd_wrn16_1"), 2, "stopped")
        app.pop_screen()
        await settle(pilot)
        assert app.screen is screen
        assert screen.table.shown[0].id == "20261127-080000-new" and screen.table.row_count == 7
        assert screen.table.marked == [FAILED] and str(screen.table.get_row(FAILED)[0]) == "●"

    run_app(app, scenario)


def test_refresh_picks_up_new_runs(tmp_path):
    root = write_store(tmp_path / "runs")
    app = KdtuiApp(root, start="runs")

    async def scenario(pilot):
        screen = app.screen
        write_run(root, "20261127-080000-new", run_config("kd_wrn16_1"), 2, "running", pid=None)
        await pilot.press("r")
        await settle(pilot)
        assert screen.table.shown[0].id == "20261127-080000-new"
        assert screen.table.shown[0].status == "crashed"   # "running", but no such process

    run_app(app, scenario)


def test_narrow_terminal_and_light_theme_do_not_crash(tmp_path):
    app = KdtuiApp(write_store(tmp_path / "runs"), start="runs")

    async def scenario(pilot):
        screen = app.screen
        assert screen.has_class("-narrow")
        assert screen.table.row_count == 6
        app.theme = "textual-light"
        cursor_to(screen, STOPPED)
        await pilot.press("space", "space")
        await settle(pilot)
        assert screen.query_one("#runs-detail").current == "runs-compare"
        await pilot.press("D", "o", "slash", *"kd", "escape")
        await settle(pilot)
        assert screen.table.has_focus

    run_app(app, scenario, size=(80, 24))


def test_an_empty_or_missing_runs_folder_is_no_error(tmp_path):
    app = KdtuiApp(tmp_path / "runs", start="runs")

    async def scenario(pilot):
        screen = app.screen
        assert screen.table.row_count == 0
        assert "No runs in" in str(screen.query_one("#runs-summary").render())
        await pilot.press("space", "enter", "d", "R", "e", "o")
        assert app.screen is screen

    run_app(app, scenario)


def test_row_config_reads_hand_written_configs_in_any_layout(tmp_path):
    from kdtui.store import list_run_rows

    root = tmp_path / "runs"
    configs = {
        "four": "data:\n    dataset: cifar10\nstudent:\n    arch: vgg8\n"
                "loss:\n    kd:\n        weight: 0.0\n    ce: 1\n",
        "flow": "data: {dataset: cifar100}\nstudent: {arch: resnet20}\ntrain: {epochs: 3}\n"
                "loss: {amd: {weight: 1, local: false}}\n",
        "odd": "data: 7\nstudent: [1]\nteacher: x\nloss: 3\n",
    }
    for name, text in configs.items():
        run_id = f"20261128-100000-{name}"
        (root / run_id).mkdir(parents=True)
        (root / run_id / "config.yaml").write_text(text)
    rows = {row.name: row for row in list_run_rows(root)}
    assert (rows["four"].dataset, rows["four"].student, rows["four"].method) == ("cifar10", "vgg8", "ce")
    # Without summary.json's description the loss registry is not loaded: bare loss names.
    assert (rows["flow"].dataset, rows["flow"].epochs, rows["flow"].method) == ("cifar100", 3, "amd")
    assert (rows["odd"].dataset, rows["odd"].student, rows["odd"].teacher) == ("?", "?", "-")
    assert all(row.status == "starting" for row in rows.values())


def test_runs_screen_snapshot(tmp_path, snap_compare):
    app = KdtuiApp(write_store(tmp_path / "runs"), start="runs")

    async def highlight_stopped(pilot):
        await settle(pilot)
        cursor_to(app.screen, STOPPED)
        await settle(pilot)

    assert snap_compare(app, terminal_size=(120, 40), run_before=highlight_stopped)


def test_runs_screen_compare_snapshot(tmp_path, snap_compare):
    app = KdtuiApp(write_store(tmp_path / "runs"), start="runs")

    async def mark_two(pilot):
        await settle(pilot)
        cursor_to(app.screen, STOPPED)
        await pilot.press("space", "space")
        await settle(pilot)

    assert snap_compare(app, terminal_size=(120, 40), run_before=mark_two)


def test_tag_note_and_rename_from_the_viewer(tmp_path):
    from kdtui.tui.screens.prompt import PromptScreen

    root = write_store(tmp_path / "runs")
    app = KdtuiApp(root, start="runs")

    def listed_tags(run_id: str) -> tuple[str, ...]:
        """The tags of the run as the table has it listed now."""
        return next(row.tags for row in app.screen.table.run_rows if row.id == run_id)

    async def scenario(pilot):
        screen = app.screen
        cursor_to(screen, STOPPED)
        await settle(pilot)
        await pilot.press("t")
        assert isinstance(app.screen, PromptScreen)
        await pilot.press(*"baseline wrn16", "enter")
        # Each change is saved in a worker, then the list is read again: wait for the table.
        await until(pilot, lambda: listed_tags(STOPPED) == ("baseline", "wrn16"))
        cells = [str(cell) for cell in screen.table.get_row(STOPPED)]
        assert cells[6].startswith("#base"), cells[6:]   # a tags column, after the method
        assert RunDir(root / STOPPED).labels().tags == ["baseline", "wrn16"]
        # Several marked runs: the tags they share are edited, each run keeps its others.
        cursor_to(screen, FINISHED)
        await pilot.press("space")
        cursor_to(screen, STOPPED)
        await pilot.press("space")
        await pilot.press("t")
        assert app.screen.query_one("#prompt-input").value == ""   # no tag common to both
        await pilot.press(*"paper", "enter")
        await until(pilot, lambda: "paper" in listed_tags(STOPPED) and "paper" in listed_tags(FINISHED))
        cursor_to(screen, STOPPED)
        await pilot.press("t", *" more", "enter")   # the prompt edits the tags shown: typing appends
        await until(pilot, lambda: "more" in listed_tags(STOPPED))
        assert RunDir(root / STOPPED).labels().tags == ["baseline", "wrn16", "paper", "more"]
        await pilot.press("t", "backspace", "backspace", "backspace", "backspace", "backspace", "enter")
        await until(pilot, lambda: "more" not in listed_tags(STOPPED))
        assert RunDir(root / STOPPED).labels().tags == ["baseline", "wrn16", "paper"]
        assert RunDir(root / FINISHED).labels().tags == ["paper"]
        await pilot.press("space")   # unmark the last one; the first stays marked
        screen.table.marked.clear()
        screen.table.fill()
        cursor_to(screen, STOPPED)
        await settle(pilot)
        await pilot.press("n", *"too high an lr", "enter")
        # saved in a worker, then the list and the detail are read again in workers of their own
        await until(pilot, lambda: "too high an lr" in str(screen.query_one("#runs-summary").render()))
        await pilot.press("N", "ctrl+a", "ctrl+k", *"amd_best", "enter")
        await until(pilot, lambda: str(screen.table.get_row(STOPPED)[1]).startswith("amd_best"))
        assert (root / STOPPED).is_dir() and RunDir(root / STOPPED).labels().name == "amd_best"
        await pilot.press("N", "ctrl+a", "ctrl+k", *"../x", "enter")   # refused, said so
        await settle(pilot)
        assert RunDir(root / STOPPED).labels().name == "amd_best"
        await pilot.press("n", "escape")                              # Esc changes nothing
        await settle(pilot)
        assert RunDir(root / STOPPED).labels().note == "too high an lr"

    messages = notifications(app)
    run_app(app, scenario)
    assert any("is not allowed" in message for message in messages)


def test_filter_box_takes_config_values_and_tags(tmp_path):
    root = write_store(tmp_path / "runs")
    from kdtui.store.labels import set_tags

    set_tags(RunDir(root / FINISHED), add=["baseline"])
    app = KdtuiApp(root, start="runs")

    async def scenario(pilot):
        screen = app.screen
        await pilot.press("slash", *"lr=0.5")
        await filtered(pilot, screen)
        await settle(pilot)
        assert names(screen) == ["amd_lr05"]
        await pilot.press("ctrl+a", "ctrl+k", *"amd.weight>=5000 stopped")
        await filtered(pilot, screen)
        await settle(pilot)
        assert names(screen) == ["amd_wrn16_1"]
        await pilot.press("ctrl+a", "ctrl+k", *"tag:baseline")
        await filtered(pilot, screen)
        assert names(screen) == ["kd_wrn16_1"]
        await pilot.press("ctrl+a", "ctrl+k", *"weight>1")   # ambiguous: said, not applied
        await filtered(pilot, screen)
        await settle(pilot)
        assert "ambiguous" in str(screen.table.border_subtitle) and "loss.ce.weight" in str(screen.table.border_subtitle)
        assert len(names(screen)) == 6
        await pilot.press("ctrl+a", "ctrl+k", *"fail")          # plain words still work
        await filtered(pilot, screen)
        assert names(screen) == ["amd_lr05"] and "filter:" not in str(screen.table.border_subtitle)

    run_app(app, scenario)


def test_config_column_and_seed_groups_in_the_viewer(tmp_path):
    root = tmp_path / "runs"
    for index, (seed, peak) in enumerate([(0, 80.0), (1, 82.0), (2, 84.0)]):
        config = run_config("kd_wrn16_1")
        config["train"]["seed"] = seed
        write_run(root, f"20261121-10150{index}-kd_s{seed}", config, 6, "finished", peak=peak)
    write_run(root, "20261121-101509-other", run_config("kd_wrn16_1", lr=0.5), 6, "finished", peak=70.0)
    app = KdtuiApp(root, start="runs")

    async def scenario(pilot):
        screen = app.screen
        await pilot.press("c", *"lr", "enter")
        await settle(pilot)
        assert "train.lr" in screen.table.config_columns
        column = [str(label) for label in (c.label for c in screen.table.columns.values())].index("train.lr")
        assert [str(screen.table.get_row(row.id)[column]) for row in screen.table.shown] == ["0.5", "0.1", "0.1", "0.1"]
        await pilot.press("c", *"nokey", "enter")              # unknown: said, nothing added
        await settle(pilot)
        assert screen.table.config_columns == ["train.lr"]
        await pilot.press("g")
        await settle(pilot)
        assert [row.id for row in screen.table.shown] == ["20261121-101509-other", "20261121-101502-kd_s2"]
        cells = [str(cell) for cell in screen.table.get_row("20261121-101502-kd_s2")]
        # Best accuracies 77.79, 79.73, 81.67 (peak × (1 - 0.55⁶)): mean ± sample std (ddof=1).
        assert cells[1] == "kd_s2" and "79.73 ± 1.94 n=3" in cells, cells[5:]
        assert "grouped by seed" in str(screen.table.border_title)
        await pilot.press("c", *"train.lr", "enter", "g")      # a shown column goes; groups off
        await settle(pilot)
        assert screen.table.config_columns == [] and len(screen.table.shown) == 4

    messages = notifications(app)
    run_app(app, scenario)
    assert any("No run has a config key 'nokey'" in message for message in messages)
