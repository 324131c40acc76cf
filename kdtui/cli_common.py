"""What the CLI's commands share: the runs-folder option, user errors as one red line
(exit 2, no traceback), opening the app, and stopping a run cleanly on Ctrl-C/SIGTERM.

Usage::

    with user_errors():
        raise KdtuiError("…")        # printed as `error: …`, exit code 2
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from pathlib import Path
from typing import Iterator, Optional

import typer

from kdtui.errors import KdtuiError

RunsDirOption = typer.Option(None, "--runs-dir", help="Runs folder (default $KDTUI_RUNS_DIR or ./runs).")


def interactive() -> bool:
    """Whether the Textual app can run here: a terminal on both ends."""
    return sys.stdin.isatty() and sys.stdout.isatty()


def open_app(root: Path, **kwargs: object) -> None:
    from kdtui.tui.app import KdtuiApp
    from kdtui.tui.priority import lower_app_priority
    from kdtui.tui.process import launches_dir

    try:  # the app writes launch logs here: an unwritable runs folder is an error now
        launches_dir(root).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise KdtuiError(f"Cannot use the runs folder {root}: {exc.strerror}. Choose another with "
                         "--runs-dir or KDTUI_RUNS_DIR.") from None
    app = KdtuiApp(root, **kwargs)  # type: ignore[arg-type]
    # Drawing waits behind the runs the app starts (they keep this priority): on a machine
    # with few cores a watched run then trains as fast as a headless one.
    lower_app_priority()
    app.run()
    if app.return_code:
        raise typer.Exit(app.return_code)


def use_runs_dir(runs_dir: Optional[Path]) -> None:
    # A --runs-dir given before the subcommand applies to it (through the variable every
    # command falls back to), so `kdtui --runs-dir X runs ls` lists X.
    if runs_dir is not None:
        os.environ["KDTUI_RUNS_DIR"] = str(Path(runs_dir).expanduser().absolute())


def open_group_screen(ctx: typer.Context, runs_dir: Optional[Path], start: str) -> None:
    """A command group called without a subcommand opens its app screen (help when there is
    no terminal); with one, it only passes --runs-dir on."""
    use_runs_dir(runs_dir)
    if ctx.invoked_subcommand is not None:
        return
    if not interactive():
        print(ctx.get_help())
        raise typer.Exit(0)
    from kdtui.store import runs_root

    with user_errors():
        open_app(runs_root(runs_dir), start=start)


def fail(message: str, code: int = 2) -> "typer.Exit":
    from rich.console import Console

    from rich.markup import escape

    # Messages quote user input (paths, names): escape it so rich shows it as written.
    Console(stderr=True, highlight=False).print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    return typer.Exit(code)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    try:
        yield
    except KdtuiError as exc:
        raise fail(str(exc)) from None


class StopOnSignal:
    """First Ctrl-C / SIGTERM asks the trainer to stop cleanly; a second Ctrl-C interrupts.
    SIGUSR1 asks it to finish the current epoch, checkpoint it, then stop (exit 128 + 10).

    ``second_interrupts=False`` under torchrun: a Ctrl-C reaches each process twice (from the
    terminal, then passed on by torchrun), and torchrun itself kills processes that do not
    end in time."""

    def __init__(self, second_interrupts: bool = True) -> None:
        from kdtui.events import StopRequest

        self.event = StopRequest()
        self.signum: int | None = None
        self.second_interrupts = second_interrupts

    def __enter__(self) -> "StopOnSignal":
        self.previous = {s: signal.signal(s, self.handle) for s in (signal.SIGINT, signal.SIGTERM)}
        self.previous[signal.SIGUSR1] = signal.signal(signal.SIGUSR1, self.handle_epoch_end)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)

    def handle(self, signum: int, frame: object) -> None:
        if self.event.is_set() and signum == signal.SIGINT:
            if self.second_interrupts:
                raise KeyboardInterrupt
            return
        self.signum = signum
        self.event.set()
        print("\nstopping: finishing the current step, keeping the last checkpoint…", file=sys.stderr)

    def handle_epoch_end(self, signum: int, frame: object) -> None:
        if self.signum is None:
            self.signum = signum
        self.event.at_epoch_end.set()
        print("\nstopping at the end of this epoch (it is checkpointed first)…", file=sys.stderr)

    @property
    def exit_code(self) -> int:
        return 128 + (self.signum or signal.SIGINT)


