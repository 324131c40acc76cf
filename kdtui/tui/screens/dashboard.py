"""The live dashboard of one run.

It follows the run folder (metrics.jsonl, summary.json, log.txt) from a thread worker, so
it shows a run the same way whoever trains it: a child process the app started, a
``kdtui run --headless`` in another shell, or a run that has ended. The worker posts what
it read as messages; the screen keeps the run's history and hands it down to the panels
(:mod:`kdtui.tui.panels`), redrawing them only when new records arrive.

Usage::

    app.push_screen(DashboardScreen(run=RunDir(path)))       # kdtui watch RUN
    app.push_screen(DashboardScreen(launch=Launch.start(...)))  # a run the app started
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Iterable

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid
from textual.screen import Screen
from textual.widgets import Footer, Log
from textual.worker import get_current_worker

from kdtui.store import RESUMABLE, RunDir, Summary
from kdtui.store.follow import RunFollower, RunHistory, RunProgress, run_progress
from kdtui.tui.messages import LaunchEnded, RunSwitched, RunUpdated
from kdtui.tui.screens import first_screen_check
from kdtui.tui.panels import PANELS, DashboardState, Panel
from kdtui.tui.process import TOLD_BY_SUMMARY, Launch, stop_run
from kdtui.tui.settings import load_settings, save_settings
from kdtui.tui.widgets.run_header import RunHeader
from kdtui.tui.widgets.series_plot import SeriesPlot

SMOOTHING_STEPS = (0.0, 0.6, 0.8, 0.9, 0.95, 0.99)
SCALES = ("auto", "linear", "log10", "normalised")  # auto: log10 when the terms span > 2 decades
ZOOMS = (1.0, 0.5, 0.25, 0.1)   # the last fraction of the x-range the plots show ("z", "Z")
CURSOR_STEP = 0.02              # of the shown x-range per "," / "." ("<" / ">": five times that)
WIDE = 110  # columns from which the panels sit side by side
STEP_REDRAW_MIN_S = 2.0  # the per-step panels are redrawn at most this often…
REDRAW_CPU_SHARE = 0.02  # …and rarer still where drawing them is slow: the trainer may share the CPU


class DashboardScreen(Screen):
    BINDINGS = [
        Binding("s", "stop", "Stop"),
        Binding("q", "back", "Back"),     # back one level…
        Binding("q", "app.quit", "Quit"),  # …or, on the first screen, quit (asking first)
        Binding("escape", "back(False)", "Back", show=False),
        Binding("e", "toggle_epoch_view", "Step/epoch"),
        Binding("l", "cycle_scale", "Scale"),
        Binding("w", "toggle_weighted", "Weighted"),
        Binding("left_square_bracket", "smoothing(-1)", "Smooth-"),
        Binding("right_square_bracket", "smoothing(1)", "Smooth+"),
        Binding("z", "zoom(1)", "Zoom in", show=False),
        Binding("Z", "zoom(-1)", "Zoom out", show=False),
        Binding("c", "toggle_cursor", "Cursor", show=False),
        Binding("comma", "move_cursor(-1)", "Cursor ←", show=False),
        Binding("full_stop", "move_cursor(1)", "Cursor →", show=False),
        Binding("less_than_sign", "move_cursor(-5)", "Cursor ←←", show=False),
        Binding("greater_than_sign", "move_cursor(5)", "Cursor →→", show=False),
        Binding("R", "resume", "Resume"),
        Binding("a", "analyse", "Analysis", show=False),
        Binding("pagedown", "scroll_panels(1)", "Scroll", show=False),
        Binding("pageup", "scroll_panels(-1)", "Scroll", show=False),
    ]

    def __init__(self, run: RunDir | None = None, launch: Launch | None = None) -> None:
        super().__init__()
        self.run = run
        self.launch = launch
        self.history = RunHistory()
        self.summary: Summary | None = None
        self.summary_unreadable = False
        self.smoothing_index = 3
        self.scale_index = 0
        self.epoch_view = False
        self.weighted = False
        self.zoom_index = 0
        self.cursor: float | None = None   # across the plots' shown x-range, 0..1
        self.launch_error: str | None = None
        self.phase = ""
        self.steps_pending = False
        self.last_step_redraw = 0.0
        self.panels: list[Panel] = []
        self.settings_warning = self.restore_view()

    def restore_view(self) -> str | None:
        """Scale, smoothing and weighted view as the user left them last (settings.json);
        values this version does not know are ignored. Returns a warning to show, if any."""
        settings, warning = load_settings()
        view = settings.get("dashboard")
        if not isinstance(view, dict):
            return warning
        if view.get("scale") in SCALES:
            self.scale_index = SCALES.index(view["scale"])
        if view.get("smoothing") in SMOOTHING_STEPS:
            self.smoothing_index = SMOOTHING_STEPS.index(view["smoothing"])
        if isinstance(view.get("weighted"), bool):
            self.weighted = view["weighted"]
        return warning

    @work(thread=True, exclusive=True, group="settings", exit_on_error=False)
    def remember_view(self) -> None:
        """Save the view options (off the event loop: the write is fsynced)."""
        problem = save_settings("dashboard", {"scale": self.scale, "smoothing": self.smoothing,
                                              "weighted": self.weighted})
        if problem is not None:
            self.app.call_from_thread(self.notify, problem, title="Settings", severity="warning")

    # --- layout -------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield RunHeader(id="header")
        self.panels = [panel() for panel in PANELS]
        with Grid(id="panels"):
            yield from self.panels
        yield Footer()

    def on_mount(self) -> None:
        self.apply_width(self.size.width)
        if self.settings_warning:
            self.notify(self.settings_warning, title="Settings", severity="warning", timeout=10)
        self.redraw()
        self.follow()
        self.set_interval(1.0, self.update_header)
        self.set_interval(0.5, self.draw_pending_steps)

    def on_resize(self, event) -> None:
        self.apply_width(event.size.width)

    def apply_width(self, width: int) -> None:
        self.set_class(width < WIDE, "-narrow")

    # --- following the run (thread worker) ----------------------------------------------

    @work(thread=True, exclusive=True, group="follow", exit_on_error=False)
    def follow(self) -> None:
        """Poll the launch (if any) and the run folder; post what changed to the screen.

        Files are read and JSON parsed here; the history the panels read is only changed on
        the UI thread (by the message handlers), so a redraw never sees it half-updated."""
        worker = get_current_worker()
        follower: RunFollower | None = None
        following: Path | None = None
        reported: Launch | None = None
        interval = getattr(self.app, "poll_interval", 0.5)

        def deliver(message) -> bool:
            return not worker.is_cancelled and self.post_message(message)

        while not worker.is_cancelled:
            launch = self.launch
            if launch is not None:
                runs = launch.announced()
                if runs and runs[-1][0] != following:
                    path, role = runs[-1]
                    phase = {"teacher": "teacher 1/2"}.get(role, "")
                    if role == "student" and len(runs) > 1:
                        phase = "student 2/2"
                    if not deliver(RunSwitched(RunDir(path), phase)):
                        return
                    follower, following = RunFollower(RunDir(path)), path
                code = launch.returncode
                # Exit codes of a run that ended finished, failed or stopped: its summary tells.
                if code is not None and reported is not launch and (not runs or code not in TOLD_BY_SUMMARY):
                    reported = launch
                    if not deliver(LaunchEnded(code, launch.output_tail())):
                        return
            if follower is None and self.run is not None:
                follower, following = RunFollower(self.run), self.run.path
            if follower is not None:
                update = follower.poll()
                if update.records or update.log_lines or update.summary_changed or update.reset:
                    if not deliver(RunUpdated(update)):
                        return
            time.sleep(interval)

    def on_run_switched(self, message: RunSwitched) -> None:
        self.run = message.run
        self.phase = message.phase
        self.history = RunHistory()
        self.summary = None
        self.summary_unreadable = False
        for panel in self.panels:
            panel.reset()
        self.log_lines([f"── following {message.run.id}"])
        self.redraw()

    def on_launch_ended(self, message: LaunchEnded) -> None:
        code, output = message.code, message.output
        if self.run is None:
            self.launch_error = output.strip().splitlines()[-1] if output.strip() else f"exit code {code}"
            self.log_lines(output.splitlines() or [f"the run process exited with code {code}"])
            self.notify(self.launch_error, title="The run did not start", severity="error", timeout=10)
        else:
            self.log_lines(output.splitlines()[-5:])
            self.notify(output.strip().splitlines()[-1] if output.strip() else f"exit code {code}",
                        title="The run process ended", severity="error", timeout=10)
        self.update_header()

    def on_run_updated(self, message: RunUpdated) -> None:
        update = message.update
        if update.reset:
            self.history.clear()
            for panel in self.panels:
                panel.reset()
            self.log_lines(["── metrics rewritten (resume): reloading"])
        self.history.add(update.records)
        if update.summary is not None:
            self.summary = update.summary
        if update.summary_changed:
            self.summary_unreadable = update.summary_unreadable
        if update.log_lines:
            self.log_lines(compact_log_line(line) for line in update.log_lines)
        epochs_changed = update.reset or update.has_epochs
        if epochs_changed or update.summary is not None:
            # Once an epoch: draw the epoch panels now; the per-step ones keep their pace.
            self.redraw(paced=self.epoch_view or update.reset or not self.last_step_redraw)
        if update.records and not self.epoch_view:
            self.steps_pending = True  # frequent: drawn by the throttled timer

    def draw_pending_steps(self) -> None:
        # Step records arrive every few hundred ms on a fast GPU, and a plotext redraw costs
        # tens of ms of CPU (twice that with the compositor's share), which a trainer on the
        # same cores would feel: keep these redraws to about REDRAW_CPU_SHARE of one core.
        if not self.steps_pending:
            return
        panels = [panel for panel in self.panels if panel.STEPS]
        cost = 2 * sum(panel.render_cost_s for panel in panels)
        if time.monotonic() - self.last_step_redraw < max(STEP_REDRAW_MIN_S, cost / REDRAW_CPU_SHARE):
            return
        self.steps_pending = False
        self.draw(panels)

    def log_lines(self, lines: Iterable[str]) -> None:
        self.query_one("#log", Log).write_lines(lines)

    # --- drawing ------------------------------------------------------------------------

    @property
    def smoothing(self) -> float:
        return SMOOTHING_STEPS[self.smoothing_index]

    @property
    def scale(self) -> str:
        return SCALES[self.scale_index]

    def state(self) -> DashboardState:
        return DashboardState(self.history, self.summary, epoch_view=self.epoch_view,
                              smoothing=self.smoothing, scale=self.scale, weighted=self.weighted)

    def draw(self, panels: list[Panel]) -> None:
        state = self.state()
        for panel in panels:
            panel.update_from(state)
        if any(panel.PACED for panel in panels):
            self.last_step_redraw = time.monotonic() if self.history.step_x else 0.0

    def redraw(self, paced: bool = True) -> None:
        """Every panel (the paced ones too, unless ``paced`` is false) and the header."""
        self.draw([panel for panel in self.panels if paced or not panel.PACED])
        self.update_header()

    def draw_view(self) -> None:
        """The panels drawn per the view options, after a view key."""
        self.draw([panel for panel in self.panels if panel.PACED])

    def progress(self) -> RunProgress:
        progress = run_progress(self.summary, self.history, run_id=self.run.id if self.run else "",
                                phase=self.phase, summary_unreadable=self.summary_unreadable)
        if self.launch_error and self.run is None:
            progress.status = "failed"
        return progress

    def update_header(self) -> None:
        self.query_one(RunHeader).update_from(self.progress())

    # --- actions ------------------------------------------------------------------------

    def request_stop(self, at_epoch_end: bool = False) -> bool:
        """Ask the run's process to stop (at the end of its epoch); True if a signal was sent.
        Tells the user either way."""
        if self.launch is not None and self.launch.returncode is None:
            if at_epoch_end:
                self.launch.stop_at_epoch_end()
                self.notify("Stopping at the end of this epoch: it is checkpointed first.", title="Stop")
            else:
                self.launch.terminate()
                self.notify("Stopping: the run finishes its step and keeps the last checkpoint.", title="Stop")
            return True
        if self.summary is None:
            self.notify("Nothing to stop yet.", title="Stop")
            return False
        message = stop_run(self.summary, at_epoch_end=at_epoch_end)
        self.notify(message, title="Stop")
        return message.startswith("Stopping")

    def action_stop(self) -> None:
        """Stop; in the middle of an epoch, ask first: now (its steps are lost) or at its end."""
        progress = self.progress()
        if progress.status == "running" and progress.steps_per_epoch and 0 < progress.step < progress.steps_per_epoch:
            from kdtui.tui.screens.stop import StopScreen

            self.app.push_screen(StopScreen(progress.epoch, progress.step, progress.steps_per_epoch),
                                 self.stop_choice)
        else:
            self.request_stop()

    def stop_choice(self, choice: str | None) -> None:
        if choice is not None:
            self.request_stop(at_epoch_end=choice == "epoch")

    def action_back(self, quit_when_first: bool = True) -> None:
        self.app.go_back(quit_when_first)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("app.quit", "quit") or (action == "back" and parameters != (False,)):
            return first_screen_check(self, action)
        return True

    def action_scroll_panels(self, direction: int) -> None:
        panels = self.query_one("#panels")
        panels.scroll_to(y=panels.scroll_y + direction * max(panels.size.height - 2, 1), animate=False)

    def action_toggle_epoch_view(self) -> None:
        self.epoch_view = not self.epoch_view
        self.draw_view()

    def action_cycle_scale(self) -> None:
        self.scale_index = (self.scale_index + 1) % len(SCALES)
        self.draw_view()
        self.remember_view()

    def action_toggle_weighted(self) -> None:
        self.weighted = not self.weighted
        self.draw_view()
        self.remember_view()

    def action_smoothing(self, delta: int) -> None:
        self.smoothing_index = max(0, min(len(SMOOTHING_STEPS) - 1, self.smoothing_index + delta))
        self.draw_view()
        self.remember_view()

    def apply_plot_view(self) -> None:
        """Zoom and cursor on every plot panel (a re-render only: the data stay)."""
        for panel in self.panels:
            if isinstance(panel, SeriesPlot):
                panel.set_view(ZOOMS[self.zoom_index], self.cursor)

    def action_zoom(self, direction: int) -> None:
        self.zoom_index = max(0, min(len(ZOOMS) - 1, self.zoom_index + direction))
        self.apply_plot_view()

    def action_toggle_cursor(self) -> None:
        self.cursor = None if self.cursor is not None else 1.0   # on: at the latest point
        self.apply_plot_view()

    def action_move_cursor(self, steps: int) -> None:
        self.cursor = max(0.0, min(1.0, (1.0 if self.cursor is None else self.cursor) + steps * CURSOR_STEP))
        self.apply_plot_view()

    def action_resume(self) -> None:
        progress = self.progress()
        if self.run is None or progress.status not in RESUMABLE:
            why = f": {progress.problem}" if progress.problem else ""
            self.notify(f"Only a stopped, failed or crashed run can be resumed (this one is "
                        f"{progress.status}{why}).", severity="warning")
            return
        if (self.launch is not None and self.launch.returncode is None) or self.app.live_launch_for(self.run):
            self.notify("This run is already being resumed.", severity="warning")
            return
        self.launch = self.app.launch(["--resume", str(self.run.path)])
        self.launch_error = None
        self.notify(f"Resuming {self.run.id}.")

    def action_analyse(self) -> None:
        """The analysis screen of the run once it has finished (kdtui/tui/screens/analysis.py)."""
        if self.run is None or self.summary is None or self.summary.status != "finished":
            self.notify("The analysis opens once the run has finished.", severity="warning")
            return
        from kdtui.tui.screens.analysis import AnalysisScreen

        self.app.push_screen(AnalysisScreen(self.run))


def compact_log_line(line: str) -> str:
    """'2026-11-28 10:15:00 INFO  epoch 1/3 …' → '10:15:00 epoch 1/3 …' (the panel is narrow)."""
    parts = line.split(None, 3)
    if len(parts) == 4 and len(parts[0]) == 10 and parts[0][4:5] == "-":
        return f"{parts[1]} {parts[3]}" if parts[2] == "INFO" else f"{parts[1]} {parts[2]} {parts[3]}"
    return line

