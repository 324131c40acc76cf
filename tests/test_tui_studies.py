"""The studies screen (`s` on home and in the runs viewer): the studies of the runs folder,
the highlighted one's table (n, mean ± sample std, teacher, the paper's number and the
difference) and its accuracy against the swept value with error bars, one line per teacher,
refreshed while the study runs; starting a study file from the launcher's preset picker."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

import yaml

from kdtui.store import RunDir, Summary, process_start_ticks, runs_root
from kdtui.study.overview import StudyReader, plot_lines
from kdtui.study.table import build_table
from kdtui.tui.app import KdtuiApp
from kdtui.tui.launcher import PresetPicker
from kdtui.tui.screens.confirm import ConfirmScreen
from kdtui.tui.screens.help import groups
from kdtui.tui.screens.studies import StudiesScreen
from kdtui.tui.widgets.study_view import StudyPlot, results_table

from test_tui_launcher import ready_launcher, wait_until

REPORTED = {"value": 86.3, "source": "Fig. 8a"}


def fake_run(root: Path, second: int, name: str, *, study: str = "g", weight: int = 1000, teacher: str = "wrn_40_2",
             seed: int = 0, best: float = 80.0, status: str = "finished", reported: dict | None = None,
             index: int = 1) -> RunDir:
    """A run of study ``study`` with a fixed id (snapshots show no clock)."""
    run = RunDir(root / f"20261128-1015{second:02d}-{name}")
    (run.path / "checkpoints").mkdir(parents=True)
    run.write_config({"preset": "amd", "teacher": {"preset": teacher, "checkpoint": "auto"},
                      "loss": {"amd": {"weight": weight}}, "train": {"seed": seed, "device": "cpu"}})
    record = {"id": study, "index": index,
              "point": {"loss.amd.weight": weight, "teacher.preset": teacher, "train.seed": seed}}
    if reported:
        record["reported"] = reported
    # "running" is believed while its writer lives, and never of this very process: the
    # test runner's parent stands in for a training process.
    live = {"pid": os.getppid(), "host": socket.gethostname(), "pid_start": process_start_ticks(os.getppid())}
    run.write_summary(Summary(status=status, epochs=2, epochs_done=2 if status == "finished" else 1,
                              best_test_acc=best if status == "finished" else None,
                              final_test_acc=best - 1 if status == "finished" else None,
                              teacher_test_acc=92.0, study=record, **(live if status == "running" else {})))
    return run


def write_store(root: Path) -> Path:
    """Study g: γ 1000 and 5000 × teachers WRN40-2 and WRN16-3 (two seeds of most), one run
    still training; study h: one finished run."""
    fake_run(root, 0, "g-a", weight=1000, teacher="wrn_40_2", seed=0, best=80.0)
    fake_run(root, 1, "g-b", weight=1000, teacher="wrn_40_2", seed=1, best=82.0)
    fake_run(root, 2, "g-c", weight=5000, teacher="wrn_40_2", seed=0, best=85.0, reported=REPORTED, index=2)
    fake_run(root, 3, "g-d", weight=5000, teacher="wrn_40_2", seed=1, best=87.0, reported=REPORTED, index=2)
    fake_run(root, 4, "g-e", weight=1000, teacher="wrn_16_3", seed=0, best=75.0, index=3)
    fake_run(root, 5, "g-f", weight=5000, teacher="wrn_16_3", seed=0, best=78.0, index=4)
    fake_run(root, 6, "g-g", weight=5000, teacher="wrn_16_3", seed=1, status="running", index=4)
    fake_run(root, 7, "h-a", study="h", weight=3000, best=70.0)
    return root


def test_plot_lines_one_per_teacher_over_the_swept_value(tmp_path):
    studies = StudyReader(write_store(tmp_path / "runs")).read()
    assert sorted(studies) == ["g", "h"] and len(studies["g"]) == 7
    table = build_table(studies["g"], metric="best")
    xlabel, lines = plot_lines(table)
    assert xlabel == "loss.amd.weight"
    by_label = {line.label: line for line in lines}
    assert sorted(by_label) == ["teacher.preset=wrn_16_3", "teacher.preset=wrn_40_2"]
    wrn40 = by_label["teacher.preset=wrn_40_2"]
    assert wrn40.xs == [1000.0, 5000.0] and wrn40.means == [81.0, 86.0]
    assert [round(s, 6) for s in wrn40.stds] == [1.414214, 1.414214]          # sample std of 80, 82
    assert by_label["teacher.preset=wrn_16_3"].stds == [None, None]          # n = 1 each


def test_the_reader_reads_a_run_again_only_when_its_summary_changed(tmp_path, monkeypatch):
    root = write_store(tmp_path / "runs")
    reader = StudyReader(root)
    reader.read()
    import kdtui.study.overview as overview

    reads: list[str] = []
    real = overview.read_result
    monkeypatch.setattr(overview, "read_result", lambda run: reads.append(run.id) or real(run))
    reader.read()
    assert reads == ["20261128-101506-g-g"]          # only the live run
    finished = RunDir(root / "20261128-101506-g-g")
    summary = finished.summary()
    summary.status, summary.best_test_acc = "finished", 79.0
    finished.write_summary(summary)
    fake_run(root, 8, "h-b", study="h", weight=3000, seed=1, best=72.0)
    reads.clear()
    studies = reader.read()
    assert sorted(reads) == ["20261128-101506-g-g", "20261128-101508-h-b"]
    assert len(studies["h"]) == 2


async def settle(pilot) -> None:
    """Until the workers are done and what they read is shown (a poll may replace a poll)."""
    from textual.worker import WorkerCancelled

    for _ in range(4):
        try:
            await pilot.app.workers.wait_for_complete()
        except WorkerCancelled:
            pass
        await pilot.pause()


def shown_text(screen: StudiesScreen) -> str:
    from rich.console import Console

    console = Console(width=200, record=True)
    console.print(results_table(screen.table) if screen.table is not None else "")
    return " ".join(console.export_text().split())


def test_studies_screen_from_the_runs_viewer_live_and_metric(tmp_path):
    root = write_store(tmp_path / "runs")

    async def main() -> None:
        app = KdtuiApp(root, start="runs", poll_interval=0.05)
        async with app.run_test(size=(120, 40)) as pilot:
            await settle(pilot)
            assert "Studies" in [command.title for command in app.get_system_commands(app.screen)]
            await pilot.press("s")
            await wait_until(pilot, lambda: isinstance(app.screen, StudiesScreen))
            screen = app.screen
            await wait_until(pilot, lambda: bool(screen.studies))
            await settle(pilot)
            listing = screen.query_one("#studies-list")
            assert [str(key.value) for key in listing.rows] == ["g", "h"]
            text = shown_text(screen)
            # mean ± sample std per (γ, teacher); the paper's 86.3 beside 86.00, Δ -0.30.
            assert "1000 wrn_40_2 2 81.00 ± 1.41 92.00" in text
            assert "5000 wrn_40_2 2 86.00 ± 1.41 92.00 86.30 -0.30" in text
            assert "5000 wrn_16_3 1 78.00 92.00" in text
            assert "not finished (not averaged): 1 run(s)" in text and "running" in text
            plot = screen.query_one(StudyPlot)
            labels = [s.label for s in plot.spec.series if s.label]
            assert labels == ["teacher.preset=wrn_40_2", "teacher.preset=wrn_16_3"]
            bars = [s for s in plot.spec.series if not s.label]
            assert [(list(b.xs), [round(y, 2) for y in b.ys]) for b in bars] == [
                ([1000.0, 1000.0], [79.59, 82.41]), ([5000.0, 5000.0], [84.59, 87.41])]
            assert plot.spec.xlabel == "loss.amd.weight"

            # The running point finishes: the next poll shows it, without a key.
            live = RunDir(root / "20261128-101506-g-g")
            summary = live.summary()
            summary.status, summary.best_test_acc, summary.final_test_acc = "finished", 80.0, 79.0
            live.write_summary(summary)
            await wait_until(pilot, lambda: "5000 wrn_16_3 2 79.00 ± 1.41" in shown_text(screen), 10)
            assert "not finished" not in shown_text(screen)

            await pilot.press("m")
            await pilot.pause()
            assert "final test accuracy" in shown_text(screen) and "1000 wrn_40_2 2 80.00 ± 1.41" in shown_text(screen)
            await pilot.press("down")
            await pilot.pause()
            assert screen.chosen == "h" and "study h" in shown_text(screen)
            await pilot.press("escape")
            await wait_until(pilot, lambda: not isinstance(app.screen, StudiesScreen))

    asyncio.run(main())


def test_studies_key_on_home_help_and_palette(tmp_path):
    assert ("Studies", StudiesScreen) in groups()
    root = tmp_path / "runs"

    async def main() -> None:
        app = KdtuiApp(root, start="home")
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.pause()
            titles = [command.title for command in app.get_system_commands(app.screen)]
            assert "Studies" in titles
            app.set_focus(None)
            await pilot.press("s")
            await wait_until(pilot, lambda: isinstance(app.screen, StudiesScreen))
            await settle(pilot)
            note = app.screen.query_one("#studies-note")
            assert note.display and "No study in" in str(note.render())

    asyncio.run(main())


def test_a_study_file_from_the_preset_picker_starts_a_sweep_and_opens_the_screen(tiny_presets, tmp_path):
    (tiny_presets / "studies").mkdir()
    study = tiny_presets / "studies" / "mini.yaml"
    study.write_text(yaml.safe_dump({"name": "mini", "description": "a tiny study", "base": "tiny_teacher",
                                     "set": {"train.epochs": 1, "data.dataset": "cifar10",
                                             "data.root": str(tmp_path / "no-data"), "data.download": False},
                                     "grid": {"train.lr": [0.05, 0.1]}, "seeds": [0]}))

    async def main() -> None:
        app = KdtuiApp(runs_root(), start="home", poll_interval=0.05)
        async with app.run_test(size=(120, 40)) as pilot:
            await ready_launcher(pilot)
            await pilot.press("ctrl+o")
            await wait_until(pilot, lambda: isinstance(app.screen, PresetPicker) and "study:mini" in app.screen.paths)
            await pilot.press(*"mini", "enter")
            await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), 60)
            question = str(app.screen.query_one("#question").render())
            assert "Start study mini: 2 run(s) (2 point(s) × seeds)?" in question
            await pilot.press("y")
            await wait_until(pilot, lambda: isinstance(app.screen, StudiesScreen))
            screen = app.screen
            assert screen.chosen == "mini"
            (launch,) = app.launches
            command = launch.process.args
            assert command[1:] == ["-m", "kdtui", "sweep", str(study), "--headless", "--runs-dir", str(runs_root())]
            assert "The study keeps running in the background" in KdtuiApp.leave_message([launch])
            # Both points fail when they load their data (a real child process): the screen says so.
            notified: list[str] = []
            real_notify = screen.notify
            screen.notify = lambda message, **kw: notified.append(message) or real_notify(message, **kw)
            await wait_until(pilot, lambda: bool(notified), 120)
            assert launch.returncode == 1 and "exit code 1" in notified[0] and "failed" in notified[0]

    asyncio.run(main())


def test_studies_screen_snapshot(tmp_path, snap_compare):
    app = KdtuiApp(write_store(tmp_path / "runs"), start="runs")

    async def open_studies(pilot):
        await settle(pilot)
        await pilot.press("s")
        await settle(pilot)
        await settle(pilot)

    assert snap_compare(app, terminal_size=(120, 40), run_before=open_studies)
