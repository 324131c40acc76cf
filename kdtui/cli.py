"""The ``kdtui`` command line (Typer).

Every command turns a :class:`~kdtui.errors.KdtuiError` into one clear paragraph on
stderr and exit code 2, never a traceback. Heavy modules (torch) are imported inside the
commands, so ``kdtui --help`` stays instant.

Usage::

    kdtui run presets/quickstart.yaml --headless --set train.epochs=2
    kdtui run --resume 20261128-101500-quickstart
    kdtui presets
    kdtui runs ls
    kdtui runs show 20261128-101500-quickstart
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Iterator, List, Optional

import typer

from kdtui.cli_study import register as register_study_commands
from kdtui.errors import KdtuiError

app = typer.Typer(
    help="kdtui: knowledge distillation for image classifiers — train, compare and watch runs.",
    add_completion=False, pretty_exceptions_enable=False, invoke_without_command=True,
    rich_markup_mode=None,  # plain help text: skips rich's markdown import, keeps --help fast
)
runs_app = typer.Typer(help="Browse past runs: the runs viewer, or ls/show/rm.", invoke_without_command=True)
app.add_typer(runs_app, name="runs")

RunsDirOption = typer.Option(None, "--runs-dir", help="Runs folder (default $KDTUI_RUNS_DIR or ./runs).")


def interactive() -> bool:
    """Whether the Textual app can run here: a terminal on both ends."""
    return sys.stdin.isatty() and sys.stdout.isatty()


def open_app(root: Path, **kwargs: object) -> None:
    from kdtui.tui.app import KdtuiApp
    from kdtui.tui.process import launches_dir

    try:  # the app writes launch logs here: an unwritable runs folder is an error now
        launches_dir(root).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise KdtuiError(f"Cannot use the runs folder {root}: {exc.strerror}. Choose another with "
                         "--runs-dir or KDTUI_RUNS_DIR.") from None
    app = KdtuiApp(root, **kwargs)  # type: ignore[arg-type]
    app.run()
    if app.return_code:
        raise typer.Exit(app.return_code)


def use_runs_dir(runs_dir: Optional[Path]) -> None:
    # A --runs-dir given before the subcommand applies to it (through the variable every
    # command falls back to), so `kdtui --runs-dir X runs ls` lists X.
    if runs_dir is not None:
        os.environ["KDTUI_RUNS_DIR"] = str(Path(runs_dir).expanduser().absolute())


@app.callback()
def home(ctx: typer.Context,
         runs_dir: Optional[Path] = typer.Option(None, "--runs-dir", help="Runs folder (default $KDTUI_RUNS_DIR or ./runs).")) -> None:
    """With no command: the app's home screen (launcher and recent runs)."""
    open_group_screen(ctx, runs_dir, "home")


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
    """First Ctrl-C / SIGTERM asks the trainer to stop cleanly; a second Ctrl-C interrupts."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signum: int | None = None

    def __enter__(self) -> "StopOnSignal":
        self.previous = {s: signal.signal(s, self.handle) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)

    def handle(self, signum: int, frame: object) -> None:
        if self.event.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum
        self.event.set()
        print("\nstopping: finishing the current step, keeping the last checkpoint…", file=sys.stderr)

    @property
    def exit_code(self) -> int:
        return 128 + (self.signum or signal.SIGINT)


@app.command()
def run(
    preset: Optional[str] = typer.Argument(None, help="Preset file or name (see `kdtui presets`)."),
    headless: bool = typer.Option(False, "--headless", help="Run in this shell with rich progress."),
    overrides: List[str] = typer.Option([], "--set", help="Override a preset value: KEY=VALUE, e.g. train.lr=0.05."),
    name: Optional[str] = typer.Option(None, "--name", help="Run name (default: the preset name)."),
    resume: Optional[str] = typer.Option(None, "--resume", help="Resume a stopped or failed run (id or folder)."),
    runs_dir: Optional[Path] = RunsDirOption,
    announce: Optional[Path] = typer.Option(None, "--announce", hidden=True,
                                            help="Append each run id created to this file (used by the app)."),
) -> None:
    """Train a run from a preset, or resume one: in the app's live dashboard, or with
    --headless in this shell (also when the output is not a terminal)."""
    from kdtui.config import load_config
    from kdtui.console import HeadlessConsole
    from kdtui import events as ev
    from kdtui.presets import find_preset
    from kdtui.store import (RunDir, RunStoreWriter, check_resumable, check_run_name, resolve_run,
                             runs_root)

    with user_errors():
        if (preset is None) == (resume is None):
            raise KdtuiError("Give either a PRESET to start a run or --resume RUN to continue one, "
                             "e.g. `kdtui run presets/quickstart.yaml --headless`.")
        root = runs_root(runs_dir)
        if resume is not None and (overrides or name):
            raise KdtuiError("--resume continues a run with its own config; --set and "
                             "--name cannot be used with it.")
        if not headless and interactive():
            # Everything the child would reject is checked here, so the app opens only on a
            # run that can start; the child repeats the checks (for headless use).
            if resume is None:
                cfg = load_config(find_preset(preset), tuple(overrides))
                check_run_name(name or cfg.preset)
                args = [preset, *(a for o in overrides for a in ("--set", o))] + (["--name", name] if name else [])
            else:
                run_dir = resolve_run(root, resume)
                check_resumable(run_dir)
                args = ["--resume", str(run_dir.path)]
            open_app(root, start="run", run_args=args)
            return
        console = HeadlessConsole()

        def sinks_for(run_dir: RunDir, role: str) -> list:
            if announce is not None:
                from kdtui.store.announce import announce as announce_run

                announce_run(announce, run_dir, role)
            return [RunStoreWriter(run_dir), console]

        notify = lambda text: console.console.print(f"[bold cyan]{text}[/]")  # noqa: E731
        with StopOnSignal() as stop:
            from kdtui.engine.launch import resume_run, start_run

            try:
                if resume is not None:
                    _, ended = resume_run(resume, root, sinks_for=sinks_for, stop_event=stop.event,
                                          notify=notify)
                else:
                    cfg = load_config(find_preset(preset), tuple(overrides))
                    _, ended = start_run(cfg, root, name=name, sinks_for=sinks_for,
                                         stop_event=stop.event, notify=notify,
                                         overrides=tuple(overrides))
            except KdtuiError:
                if stop.event.is_set():
                    raise typer.Exit(stop.exit_code) from None
                raise
            except KeyboardInterrupt:
                raise typer.Exit(130) from None
            except Exception as exc:  # a bug, not a user mistake
                if os.environ.get("KDTUI_DEBUG"):
                    raise
                raise fail(f"{type(exc).__name__}: {exc}. This looks like a bug in kdtui; if a run "
                           "folder was made, its log.txt has the traceback, else rerun with "
                           "KDTUI_DEBUG=1 to see it.", 1) from None
    if isinstance(ended, ev.RunStopped):
        raise typer.Exit(stop.exit_code)
    if isinstance(ended, ev.RunFailed):
        raise typer.Exit(1)


@app.command()
def presets() -> None:
    """List the presets that come with kdtui."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from kdtui.presets import grouped_presets, presets_dir
    from kdtui.study.spec import study_groups

    table = Table(title=f"presets in {escape(str(presets_dir()))}", title_justify="left")
    table.add_column("group", style="cyan")
    table.add_column("name", style="bold")
    table.add_column("description")
    for index, (group, members) in enumerate(grouped_presets() + study_groups()):
        if index:
            table.add_section()
        for row, preset in enumerate(members):
            table.add_row(group if row == 0 else "", escape(preset.name), escape(preset.description))
    Console().print(table)


@app.command()
def models(
    classes: int = typer.Option(10, "--classes", min=1, help="Classes of the classifier head (changes the counts)."),
    teacher: Optional[str] = typer.Option(None, "--teacher", help="Compare this teacher with --student."),
    student: Optional[str] = typer.Option(None, "--student", help="Compare this student with --teacher."),
    size: int = typer.Option(32, "--size", min=16, help="Input height and width for the feature-map shapes."),
) -> None:
    """List the architectures with parameter counts and feature maps, or compare a pair."""
    import torch
    from rich.console import Console
    from rich.table import Table

    from kdtui.models import MODELS, build_model, count_parameters

    def describe(name: str) -> tuple[int, list[tuple[int, ...]]]:
        # On the meta device nothing is allocated or computed, only shapes: no weight init, no convs.
        with torch.device("meta"), torch.no_grad():
            net = build_model(name, classes).eval()
            out = net(torch.empty(1, 3, size, size))
        return count_parameters(net), [tuple(f.shape[1:]) for f in out.features]

    def shapes(feats: list[tuple[int, ...]]) -> str:
        return "  ".join("×".join(map(str, shape)) for shape in feats)

    console = Console(highlight=False)
    table = Table(title=f"{classes} classes; feature maps (C×H×W) for {size}×{size} inputs",
                  title_justify="left")
    with user_errors():
        if (teacher is None) != (student is None):
            raise KdtuiError("Give both --teacher and --student to compare a pair, "
                             "e.g. `kdtui models --teacher wrn_16_8 --student vgg8`.")
        if teacher is not None and student is not None:
            (t_params, t_feats), (s_params, s_feats) = describe(teacher), describe(student)
            for column in ("role", "name", "params", "maps", "shapes"):
                table.add_column(column, justify="right" if column in ("params", "maps") else "left",
                                 no_wrap=column != "shapes")
            table.add_row("teacher", teacher, f"{t_params:,}", str(len(t_feats)), shapes(t_feats))
            table.add_row("student", student, f"{s_params:,}", str(len(s_feats)), shapes(s_feats))
            console.print(table)
            console.print(f"compression: {t_params / s_params:.2f}× (teacher params / student params)")
            if len(t_feats) != len(s_feats):
                console.print(f"[yellow]note:[/] AMD and AT pair feature maps layer by layer; the "
                              f"teacher gives {len(t_feats)} and the student {len(s_feats)}.")
            return
        for column in ("name", "params", "maps", "shapes"):
            table.add_column(column, justify="right" if column in ("params", "maps") else "left",
                             no_wrap=column != "shapes")
        for name in MODELS.names():
            params, feats = describe(name)
            table.add_row(name, f"{params:,}", str(len(feats)), shapes(feats))
    console.print(table)
    console.print("WRN: any name matching " + ", ".join(MODELS.family_patterns()) + " (depth 6n+4).")


def _acc(value: object) -> str:
    return f"{value:.2f}" if isinstance(value, (int, float)) else "-"


@app.command()
def watch(run_ref: str = typer.Argument(..., metavar="RUN", help="Run id, name or folder."),
          runs_dir: Optional[Path] = RunsDirOption) -> None:
    """Open the live dashboard of a run: followed as it trains (whoever started it), or
    complete when it has ended."""
    from kdtui.store import resolve_run, runs_root

    with user_errors():
        root = runs_root(runs_dir)
        run_dir = resolve_run(root, run_ref)
        if not interactive():
            raise KdtuiError("kdtui watch needs a terminal; use `kdtui runs show "
                             f"{run_dir.id}` to print the run instead.")
        open_app(root, start="watch", run_ref=run_dir)


@runs_app.callback()
def runs_viewer(ctx: typer.Context, runs_dir: Optional[Path] = RunsDirOption) -> None:
    """With no subcommand: the runs viewer (sort, filter, compare, resume, delete, export)."""
    open_group_screen(ctx, runs_dir, "runs")


@runs_app.command("ls")
def runs_ls(runs_dir: Optional[Path] = RunsDirOption) -> None:
    """List runs, newest first."""
    from rich.console import Console
    from rich.table import Table

    from kdtui.store import list_run_rows, runs_root

    root = runs_root(runs_dir)
    table = Table(title=f"runs in {root}", title_justify="left")
    table.add_column("run", no_wrap=True)  # ids are what users copy: never truncate them
    for column in ("status", "student", "teacher", "method", "epochs", "best %", "final %", "teacher %"):
        table.add_column(column, justify="right" if "%" in column or column == "epochs" else "left")
    for row in list_run_rows(root):
        table.add_row(row.id, row.status, row.student, row.teacher, row.method,
                      f"{row.epochs_done}/{row.epochs if row.epochs is not None else '?'}",
                      _acc(row.best_acc), _acc(row.final_acc), _acc(row.teacher_acc))
    Console().print(table)


@runs_app.command("show")
def runs_show(run_ref: str = typer.Argument(..., metavar="RUN", help="Run id or folder."),
              runs_dir: Optional[Path] = RunsDirOption) -> None:
    """Show one run: its summary, config and per-epoch metrics."""
    import json

    import yaml
    from rich.console import Console
    from rich.table import Table

    from kdtui.store import resolve_run, runs_root

    with user_errors():
        run_dir = resolve_run(runs_root(runs_dir), run_ref)
    console = Console(highlight=False)
    console.print(f"[bold]{run_dir.id}[/]  {run_dir.path}")
    summary = run_dir.summary()
    console.print(json.dumps(summary.to_dict() if summary else {"status": "no summary yet"}, indent=2))
    console.print(yaml.safe_dump(run_dir.read_config() or {}, sort_keys=False).rstrip())
    environment = run_dir.environment()
    if environment is not None:
        console.print("[bold]environment[/] (env.json)")
        console.print(yaml.safe_dump(environment, sort_keys=False, allow_unicode=True).rstrip())
    epochs = run_dir.epochs()
    if epochs:
        terms = list(epochs[-1].loss)
        table = Table(title="epochs", title_justify="left")
        for column in ["epoch", "lr", *terms, "train %", "test %", "img/s", "s"]:
            table.add_column(column, justify="right")
        for record in epochs:
            loss = record.loss
            table.add_row(str(record.epoch), f"{record.lr or 0:.4g}",
                          *(f"{loss[t]:.4g}" if t in loss else "-" for t in terms),
                          _acc(record.train_acc), _acc(record.test_acc),
                          f"{record.img_per_s or 0:.0f}", f"{record.time_s or 0:.1f}")
        console.print(table)


@runs_app.command("rm")
def runs_rm(run_ref: str = typer.Argument(..., metavar="RUN", help="Run id or folder."),
            yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
            runs_dir: Optional[Path] = RunsDirOption) -> None:
    """Delete a run folder (refused while the run is still training)."""
    from kdtui.store import check_deletable, delete_run, resolve_run, runs_root

    with user_errors():
        root = runs_root(runs_dir)
        run_dir = resolve_run(root, run_ref)
        check_deletable(root, run_dir)  # only run folders of the runs folder, never a live run
        if not yes and not typer.confirm(f"Delete {run_dir.path}?", default=False):
            raise typer.Exit(1)
        delete_run(root, run_dir)
    print(f"deleted {run_dir.id}")


register_study_commands(app)  # kdtui sweep, kdtui table (kdtui/cli_study.py)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
