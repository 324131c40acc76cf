"""The study commands: ``kdtui sweep`` (run a study file) and ``kdtui table`` (results over
seeds, the paper's numbers beside them, Figure 6's scatter).

Registered on the main app by :func:`register`; like every command they import torch only
when they train.

Usage::

    kdtui sweep presets/studies/quickstart_gamma.yaml --dry-run
    kdtui sweep gamma --headless --set train.device=cuda:1
    kdtui table --study gamma --format md --out gamma.md
    kdtui table --study ablation_apn --scatter A+P+N
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import List, Optional

import typer

from kdtui.errors import KdtuiError

RunsDir = typer.Option(None, "--runs-dir", help="Runs folder (default $KDTUI_RUNS_DIR or ./runs).")


def sweep(
    study: str = typer.Argument(..., metavar="FILE", help="Study file, or the name of one that comes "
                                "with kdtui (see `kdtui presets`)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="List the study's runs and what a sweep "
                                 "would do with each (run, resume, done); run nothing."),
    overrides: List[str] = typer.Option([], "--set", help="Override every point: KEY=VALUE (the "
                                        "study's points and seeds still win), e.g. train.device=cuda:1."),
    runs_dir: Optional[Path] = RunsDir,
    headless: bool = typer.Option(False, "--headless", help="Run in this shell with rich progress "
                                  "(a sweep always runs this way; the app's studies screen follows it)."),
    parallel: Optional[int] = typer.Option(None, "--parallel", help="Run N points at once, each in a "
                                           "process of its own, sharing the CPU cores (with --slurm: "
                                           "at most N array tasks at once)."),
    gpus: Optional[str] = typer.Option(None, "--gpus", help="Run one point per GPU at once, e.g. "
                                       "--gpus 0,1,2,3 (each process sees only its GPU)."),
    slurm: bool = typer.Option(False, "--slurm", help="Submit the points to SLURM as a job array "
                               "(after a job per shared teacher), with submitit: pip install "
                               "'kdtui[slurm]'. Returns once submitted."),
    slurm_set: List[str] = typer.Option([], "--slurm-set", help="A submitit/SLURM parameter, KEY=VALUE, "
                                        "e.g. slurm_partition=gpu, timeout_min=600, gpus_per_node=1, "
                                        "slurm_account=lab, mem_gb=32."),
    only: Optional[int] = typer.Option(None, "--only", help="Run only the study's run number N (as "
                                       "--dry-run numbers them): what each parallel or SLURM process does."),
    teacher_only: bool = typer.Option(False, "--teacher-only", hidden=True,
                                      help="With --only: train that run's 'auto' teacher if none is finished."),
) -> None:
    """Run a study: every point of its grid or list, times its seeds, one run after another
    (or several at once: --parallel, --gpus, --slurm).

    Every point is validated before the first run starts. Running the same command again
    skips finished points and resumes stopped, failed or killed ones; two sweeps of one study
    never run the same point. Ctrl-C stops the current run(s) cleanly (resume by running the
    sweep again) and the sweep with it (exit 130); a failing point is reported and the sweep
    goes on (exit 1 at the end)."""
    from kdtui.cli_common import StopOnSignal, user_errors
    from kdtui.store import runs_root
    from kdtui.study.expand import expand_study
    from kdtui.study.runner import plan_study
    from kdtui.study.spec import find_study, load_study

    with user_errors():
        root = runs_root(runs_dir)
        spec = load_study(find_study(study))
        runs = expand_study(spec, overrides)        # validates every point first
        if only is not None:
            if not 1 <= only <= len(runs):
                raise KdtuiError(f"--only: got {only}, expected a run number from 1 to {len(runs)} "
                                 f"(`kdtui sweep {study} --dry-run` numbers them).")
            runs = [runs[only - 1]]
        elif teacher_only:
            raise KdtuiError("--teacher-only goes with --only N (the run whose teacher to train).")
        plans = plan_study(spec, runs, root)
        if dry_run:
            sys.stdout.write(dry_run_listing(spec, plans, root))
            return
        if slurm:
            from kdtui.study.slurm import submit_study

            print(submit_study(spec, plans, root, list(overrides), slurm_set, parallel, gpus)[0])
            return
        with StopOnSignal() as stop:
            if teacher_only:
                train_teacher_only(plans[0], root, stop)
                return
            if parallel is not None or gpus is not None:
                outcome = run_in_parallel(spec, plans, root, list(overrides), parallel, gpus, stop)
            else:
                outcome = run_plans(spec, plans, root, stop)
    print(f"study {spec.name}: {len(outcome.done)} done, {len(outcome.failed)} failed, "
          f"{len(outcome.skipped)} skipped (finished before or training elsewhere)"
          + (", stopped" if outcome.stopped else "")
          + f" — `kdtui table --study {spec.name}` for the results")
    for failure in outcome.failed:
        print(f"  failed: {failure}", file=sys.stderr)
    if outcome.stopped:
        raise typer.Exit(stop.exit_code)
    if outcome.failed:
        raise typer.Exit(1)


def run_in_parallel(spec, plans, root: Path, overrides: list[str], parallel: Optional[int],  # noqa: ANN001
                    gpus: Optional[str], stop):
    from kdtui.study.parallel import cpu_slots, gpu_slots, run_parallel

    if parallel is not None and gpus is not None:
        raise KdtuiError("--parallel and --gpus both say how many points run at once: give one "
                         "(--gpus 0,0,1,1 runs two points on each of GPUs 0 and 1).")
    slots = gpu_slots(gpus) if gpus is not None else cpu_slots(parallel or 1)
    console = headless_console()
    return run_parallel(spec, plans, root, slots, overrides, stop.event, say_with(console))


def train_teacher_only(plan, root: Path, stop) -> None:  # noqa: ANN001
    from kdtui.engine.launch import ensure_teacher
    from kdtui.overrides import parse_override
    from kdtui.store import RunStoreWriter

    console = headless_console()
    source = ensure_teacher(plan.run.config, root, tuple(parse_override(o) for o in plan.run.overrides),
                            notify=say_with(console, "cyan"), stop_event=stop.event,
                            sinks_for=lambda run_dir, role: [RunStoreWriter(run_dir), console])
    if stop.event.is_set():
        raise typer.Exit(stop.exit_code)
    print(f"teacher: {source.run_id if source is not None and source.run_id else 'none needed'}")


def headless_console():  # noqa: ANN201 - kdtui.console.HeadlessConsole, imported lazily
    from kdtui.console import HeadlessConsole

    return HeadlessConsole()


def say_with(console, colour: str = "magenta"):  # noqa: ANN001, ANN201
    def say(text: str) -> None:
        from rich.markup import escape

        console.console.print(f"[bold {colour}]{escape(text)}[/]")
    return say


def run_plans(spec, plans, root: Path, stop):  # noqa: ANN001 - typed in kdtui.study.runner
    from kdtui.store import RunStoreWriter
    from kdtui.study.runner import run_study

    console = headless_console()

    def sinks_for(run_dir, role: str) -> list:  # noqa: ANN001
        return [RunStoreWriter(run_dir), console]

    return run_study(spec, plans, root, sinks_for=sinks_for, stop_event=stop.event,
                     say=say_with(console), notify=say_with(console, "cyan"))


def dry_run_listing(spec, plans, root: Path) -> str:  # noqa: ANN001
    from kdtui.study.formats import aligned
    from kdtui.study.runner import RUN

    head = ["#", "point", "values", "seed", "run name", "status"]
    body = []
    for plan in plans:
        run = plan.run
        status = plan.action if plan.existing is None else f"{plan.action} ({plan.existing.id}, {plan.status})"
        if plan.action == RUN and plan.ignored:
            status += f" (ignoring {len(plan.ignored)} run(s) of this point with another config)"
        body.append([f"{run.number}/{len(plans)}", str(run.index), run.describe(), str(run.seed), run.name, status])
    counts = {action: sum(p.action == action for p in plans) for action in dict.fromkeys(p.action for p in plans)}
    points = len({p.run.index for p in plans})
    seeds = len({p.run.seed for p in plans})
    lines = [f"study {spec.name} ({spec.path}): {len(plans)} runs = {points} point(s) × {seeds} seed(s), "
             f"runs folder {root}",
             "; ".join(f"{n} {action}" for action, n in counts.items()),
             *aligned(head, body, lambda i: i in (0, 1, 3))]
    return "\n".join(lines) + "\n"


def table(
    runs: Optional[List[str]] = typer.Argument(None, metavar="RUN", help="Run ids, names or folders."),
    study: Optional[str] = typer.Option(None, "--study", help="The runs of this study (its id)."),
    by: Optional[str] = typer.Option(None, "--by", help="Group by these config keys, comma-separated "
                                     "(default: the keys that vary, seeds excluded)."),
    metric: str = typer.Option("best", "--metric", help="best or final test accuracy."),
    fmt: str = typer.Option("text", "--format", help="text, md, csv or latex."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write the table to this file (atomically)."),
    scatter: Optional[str] = typer.Option(None, "--scatter", help="Instead of the table: the final "
                                          "loss (terms joined by +, e.g. A+P+N) against the accuracy, "
                                          "with Pearson's r (the paper's Figure 6); csv gives the points."),
    runs_dir: Optional[Path] = RunsDir,
) -> None:
    """Results over seeds: runs grouped by config keys, n and mean ± sample std of the test
    accuracy per group, the teacher's accuracy, and the paper's number beside it with the
    difference when the study file gave one. Unfinished runs are listed apart."""
    from kdtui.cli_common import user_errors
    from kdtui.store import atomic_write_text, runs_root
    from kdtui.study.formats import FORMATS, render, unfinished_lines
    from kdtui.study.table import build_table, collect_runs

    with user_errors():
        if fmt not in FORMATS:
            raise KdtuiError(f"--format: got {fmt!r}, expected one of {', '.join(FORMATS)}.")
        keys = [k.strip() for k in by.split(",") if k.strip()] if by else None
        results = collect_runs(runs_root(runs_dir), tuple(runs or ()), study)
        title = f"study {study}" if study else f"{len(results)} runs"
        if scatter is not None:
            text = scatter_output(results, scatter, metric, fmt)
        else:
            result = build_table(results, metric=metric, by=keys, title=title)
            text = render(result, fmt)
            if fmt != "text" and result.unfinished:
                print("\n".join(unfinished_lines(result)), file=sys.stderr)
        if out is not None:
            try:
                atomic_write_text(out.expanduser().absolute(), text)
            except OSError as exc:
                raise KdtuiError(f"--out: cannot write {out}: {exc.strerror or exc}.") from None
            print(f"wrote {out}", file=sys.stderr)
        else:
            sys.stdout.write(text)


def scatter_output(results, expression: str, metric: str, fmt: str) -> str:  # noqa: ANN001
    import csv
    import io

    from kdtui.study.scatter import correlation_line, loss_points, scatter_text
    from kdtui.study.table import METRICS

    if metric not in METRICS:
        raise KdtuiError(f"--metric: got {metric!r}, expected best or final.")
    if fmt not in ("text", "csv"):
        raise KdtuiError("--scatter draws a plot (--format text) or gives its points (--format csv).")
    points, skipped = loss_points(results, expression, metric)
    label = METRICS[metric]
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["run", f"final_{expression}", f"{metric}_acc"])
        writer.writerows([p.run_id, round(p.loss, 6), p.accuracy] for p in points)
        return buffer.getvalue()
    if not points:
        raise KdtuiError(f"No finished run has the loss terms {expression} in its last epoch; "
                         "the AMD terms are A, P and N (`kdtui runs show RUN` lists a run's terms).")
    terminal = sys.stdout.isatty()
    size = shutil.get_terminal_size((100, 30)) if terminal else os.terminal_size((80, 24))
    lines = [scatter_text(points, expression, label, width=min(size.columns, 120),
                          height=max(min(size.lines - 6, 30), 12), color=terminal),
             correlation_line(points, expression, label)]
    if skipped:
        lines.append(f"left out: {', '.join(skipped)}")
    return "\n".join(lines) + "\n"


def register(app: typer.Typer) -> None:
    """Add ``sweep`` and ``table`` to the ``kdtui`` command line."""
    app.command("sweep")(sweep)
    app.command("table")(table)
