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

import os
from pathlib import Path
from typing import List, Optional

import typer

from kdtui.cli_common import (RunsDirOption, StopOnSignal, fail, interactive, open_app,
                              open_group_screen, user_errors)
from kdtui.cli_eval import register as register_eval_commands
from kdtui.cli_runs import runs_app
from kdtui.cli_study import register as register_study_commands
from kdtui.errors import KdtuiError

app = typer.Typer(
    help="kdtui: knowledge distillation for image classifiers — train, compare and watch runs.",
    add_completion=False, pretty_exceptions_enable=False, invoke_without_command=True,
    rich_markup_mode=None,  # plain help text: skips rich's markdown import, keeps --help fast
)
app.add_typer(runs_app, name="runs")

@app.callback()
def home(ctx: typer.Context,
         runs_dir: Optional[Path] = typer.Option(None, "--runs-dir", help="Runs folder (default $KDTUI_RUNS_DIR or ./runs).")) -> None:
    """With no command: the app's home screen (launcher and recent runs)."""
    open_group_screen(ctx, runs_dir, "home")


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
    from kdtui.overrides import parse_override
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
        from kdtui.engine.distributed import launched_by_torchrun, process_group

        if not headless and not launched_by_torchrun() and interactive():
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
        # Under torchrun: one of several processes training the run (kdtui.engine.distributed).
        with StopOnSignal(second_interrupts=not launched_by_torchrun()) as stop, process_group():
            from kdtui.engine.launch import resume_run, start_run

            try:
                if resume is not None:
                    _, ended = resume_run(resume, root, sinks_for=sinks_for, stop_event=stop.event,
                                          notify=notify)
                else:
                    parsed = tuple(parse_override(text) for text in overrides)
                    cfg = load_config(find_preset(preset), parsed)
                    _, ended = start_run(cfg, root, name=name, sinks_for=sinks_for,
                                         stop_event=stop.event, notify=notify,
                                         overrides=parsed)
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


register_study_commands(app)  # kdtui sweep, kdtui table (kdtui/cli_study.py)
register_eval_commands(app)   # kdtui eval, kdtui plot (kdtui/cli_eval.py)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
