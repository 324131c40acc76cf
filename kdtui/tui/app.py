"""The kdtui Textual app.

One app, four ways in: ``kdtui`` (home: launcher and recent runs), ``kdtui run PRESET``
(straight into the new run's dashboard), ``kdtui watch RUN`` (a run's dashboard) and
``kdtui runs`` (the runs viewer). Screens post :mod:`.messages` (``OpenRun``, ``ResumeRun``)
or call the methods below to move between each other and to start runs; training always
happens in a child process (see :mod:`.process`).

One quit/back model on every screen: Esc and ``q`` go back one level; on the first screen
(where Esc does nothing) ``q`` quits, as ``ctrl+q`` and the palette's Quit do anywhere, asking first while a run this
app started still trains: stop it, leave it running, or cancel.

Usage::

    KdtuiApp(runs_root(), start="watch", run_ref="20261128-101500-quickstart").run()
"""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path
from typing import Iterable, Literal

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from kdtui.errors import KdtuiError
from kdtui.store import RunDir, resolve_run
from kdtui.tui.messages import OpenRun, ResumeRun, StartStudy
from kdtui.tui.process import Launch

Start = Literal["home", "run", "watch", "runs"]


class KdtuiApp(App[None], inherit_bindings=False):
    TITLE = "kdtui"
    # Every screen's stylesheet is loaded here: Textual does not load a Screen's own
    # CSS_PATH when that screen is the app's default screen.
    CSS_PATH = ["styles/app.tcss", "styles/home.tcss", "styles/dashboard.tcss", "styles/runs.tcss",
                "styles/studies.tcss", "styles/dialogs.tcss"]
    # Textual's own bindings (ctrl+q asks first while a run started here trains).
    BINDINGS = [
        Binding("ctrl+q", "quit", "Quit", show=False),
        Binding("ctrl+c", "help_quit", show=False, system=True),
        Binding("question_mark", "toggle_help", "Help"),
        Binding("ctrl+t", "toggle_theme", "Theme", show=False),
    ]

    def __init__(self, root: Path, *, start: Start = "home", run_ref: str | RunDir | None = None,
                 run_args: list[str] | None = None, poll_interval: float = 0.5) -> None:
        super().__init__()
        self.runs_root = root
        self.start = start
        self.run_ref = run_ref
        self.run_args = run_args or []
        self.poll_interval = poll_interval
        self.launches: list[Launch] = []
        self.theme = "textual-dark"

    def get_default_screen(self) -> Screen:
        if self.start == "watch":
            from kdtui.tui.screens.dashboard import DashboardScreen

            assert self.run_ref is not None
            run = self.run_ref if isinstance(self.run_ref, RunDir) else resolve_run(self.runs_root, self.run_ref)
            return DashboardScreen(run=run)
        if self.start == "run":
            from kdtui.tui.screens.dashboard import DashboardScreen

            return DashboardScreen(launch=self.launch(self.run_args))
        if self.start == "runs":
            from kdtui.tui.screens.runs import RunsScreen

            return RunsScreen()
        from kdtui.tui.screens.home import HomeScreen

        return HomeScreen()

    # --- navigation and actions the screens use ----------------------------------------

    def launch(self, run_args: list[str]) -> Launch:
        """Start ``kdtui run <run_args> --headless`` in a child process."""
        launch = Launch.start(run_args, self.runs_root)
        self.launches.append(launch)
        return launch

    def start_run(self, run_args: list[str]) -> None:
        """Start ``kdtui run <run_args> --headless`` in a child process and watch it."""
        from kdtui.tui.screens.dashboard import DashboardScreen

        self.push_screen(DashboardScreen(launch=self.launch(run_args)))

    def resume_run(self, run: str | RunDir) -> None:
        """Resume a run (an id of the runs folder, or its RunDir wherever it lives)."""
        self.start_run(["--resume", str(run.path) if isinstance(run, RunDir) else run])

    def live_launch_for(self, run: RunDir) -> Launch | None:
        """A launch of this app still training (or preparing) ``run``, if any."""
        for launch in self.launches:
            if launch.returncode is None and any(path == run.path for path, _ in launch.announced()):
                return launch
        return None

    def open_dashboard(self, run: RunDir | str) -> None:
        from kdtui.tui.screens.dashboard import DashboardScreen

        run_dir = run if isinstance(run, RunDir) else resolve_run(self.runs_root, run)
        self.push_screen(DashboardScreen(run=run_dir))

    def open_runs(self) -> None:
        from kdtui.tui.screens.runs import RunsScreen

        self.push_screen(RunsScreen())

    def open_studies(self, study: str | None = None, launch: Launch | None = None) -> None:
        from kdtui.tui.screens.studies import StudiesScreen

        self.push_screen(StudiesScreen(study=study, launch=launch))

    def start_study(self, study_file: Path, study_id: str) -> None:
        """Start ``kdtui sweep FILE --headless`` in a child process and follow the study."""
        launch = Launch.start_sweep(study_file, self.runs_root)
        self.launches.append(launch)
        self.open_studies(study_id, launch)

    # --- the command palette ----------------------------------------------------------------

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """Textual's commands, then kdtui's key actions that can run now on this screen (and
        its focused widget), as the footer shows them: "Stop", "Weighted", "Export CSV"…"""
        yield from super().get_system_commands(screen)
        seen = {"Quit", "Keys", "Theme", "Help", "Studies"}
        where = type(screen).__name__.removesuffix("Screen").lower()
        if where != "studies":   # from anywhere (s on home and in the runs viewer)
            yield SystemCommand("Studies", "the studies of the runs folder: results over seeds, plot",
                                self.open_studies)
        for active in screen.active_bindings.values():
            binding = active.binding
            title = binding.description
            if (not title or title in seen or not active.enabled or not binding.show
                    or not type(active.node).__module__.startswith("kdtui.")):
                continue
            seen.add(title)
            yield SystemCommand(title, f"{where}: key {self.get_key_display(binding)}",
                                partial(self.run_action, binding.action, active.node))

    # --- back and quit ---------------------------------------------------------------------

    def go_back(self, quit_when_first: bool = True) -> None:
        """q (Esc: ``quit_when_first`` false): back to the screen below; on the first screen,
        quit (asking first while a run started here trains)."""
        if len(self.screen_stack) > 1:
            self.pop_screen()
        elif quit_when_first:
            self.request_quit()

    def live_launches(self) -> list[Launch]:
        return [launch for launch in self.launches if launch.returncode is None]

    async def action_quit(self) -> None:  # ctrl+q and the palette's Quit
        self.request_quit()

    def request_quit(self) -> None:
        """Quit; while runs this app started still train, ask what to do with them."""
        from kdtui.tui.screens.quit import QuitScreen

        live = self.live_launches()
        if not live:
            self.exit()
            return
        if isinstance(self.screen, QuitScreen):
            return
        run_ids = [run_id for launch in live if (run_id := launch.latest_run_id()) is not None]
        self.push_screen(QuitScreen(run_ids, count=len(live)), lambda choice: self.quit_choice(choice, live))

    def quit_choice(self, choice: str | None, live: list[Launch]) -> None:
        if choice == "stop":
            for launch in live:
                launch.terminate()
            self.notify("Stopping: each run finishes its step and keeps its last checkpoint.", title="Quit")
            self.wait_then_exit(live)
        elif choice == "leave":
            self.exit(message=self.leave_message(live))

    @staticmethod
    def leave_message(live: list[Launch]) -> str:
        if any(launch.command == "sweep" for launch in live):
            return ("The study keeps running in the background (kdtui sweep). Follow it with: kdtui, "
                    "then s (studies), or kdtui table --study ID.")
        ids = [run_id for launch in live if (run_id := launch.latest_run_id()) is not None]
        if not ids:
            return "The run keeps starting in the background; `kdtui runs` will list it."
        if len(ids) == 1:
            return f"{ids[0]} keeps training in the background. Watch it with: kdtui watch {ids[0]}"
        return f"{len(ids)} runs keep training in the background: {', '.join(ids)}. See them with: kdtui runs"

    @work(thread=True, exclusive=True, group="quit")
    def wait_then_exit(self, live: list[Launch]) -> None:
        # Wait for the runs to checkpoint and record "stopped" before the app goes, so the
        # user sees them end; a run still busy after a minute finishes on its own.
        deadline = time.time() + 60
        while time.time() < deadline and any(launch.returncode is None for launch in live):
            time.sleep(0.2)
        message = None
        if any(launch.returncode is None for launch in live):
            message = ("A run is still stopping; it keeps its last checkpoint and records 'stopped' "
                       "when done.")
        self.call_from_thread(self.exit, None, 0, message)

    def on_open_run(self, message: OpenRun) -> None:
        try:
            self.open_dashboard(message.run)
        except KdtuiError as exc:
            self.notify(str(exc), title="Cannot open the run", severity="error")

    def on_resume_run(self, message: ResumeRun) -> None:
        try:
            self.resume_run(message.run)
        except (KdtuiError, OSError) as exc:
            self.notify(str(exc), title="Cannot resume", severity="error")

    def on_start_study(self, message: StartStudy) -> None:
        try:
            self.start_study(message.path, message.study_id)
        except OSError as exc:
            self.notify(str(exc), title="Cannot start the study", severity="error")

    def action_toggle_help(self) -> None:
        """?: the keys of every screen, grouped by screen (the current one first)."""
        from kdtui.tui.screens.help import HelpScreen

        if isinstance(self.screen, HelpScreen):
            self.pop_screen()
        else:
            self.push_screen(HelpScreen(current=type(self.screen)))

    def action_toggle_theme(self) -> None:
        self.theme = "textual-light" if self.theme == "textual-dark" else "textual-dark"
