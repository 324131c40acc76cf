"""`kdtui runs`: the runs viewer, and ls / show / rm for the shell and scripts.

Usage::

    kdtui runs                     # the viewer (a terminal), else this help
    kdtui runs ls --sort best --format csv > runs.csv
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from kdtui.cli_common import RunsDirOption, open_group_screen, user_errors

runs_app = typer.Typer(help="Browse past runs: the runs viewer, or ls/show/rm.", invoke_without_command=True)


def _acc(value: object) -> str:
    return f"{value:.2f}" if isinstance(value, (int, float)) else "-"


@runs_app.callback()
def runs_viewer(ctx: typer.Context, runs_dir: Optional[Path] = RunsDirOption) -> None:
    """With no subcommand: the runs viewer (sort, filter, compare, resume, delete, export)."""
    open_group_screen(ctx, runs_dir, "runs")


# Columns of `runs ls`: (header, value of a row as text, sort key).
LS_COLUMNS = {
    "run": ("run", lambda r: r.id, lambda r: r.id),
    "status": ("status", lambda r: r.status, lambda r: r.status),
    "dataset": ("dataset", lambda r: r.dataset, lambda r: r.dataset),
    "student": ("student", lambda r: r.student, lambda r: r.student),
    "teacher": ("teacher", lambda r: r.teacher, lambda r: r.teacher),
    "method": ("method", lambda r: r.method, lambda r: r.method),
    "epochs": ("epochs", lambda r: f"{r.epochs_done}/{r.epochs if r.epochs is not None else '?'}",
               lambda r: r.epochs_done),
    "best": ("best %", lambda r: _acc(r.best_acc), lambda r: r.best_acc),
    "final": ("final %", lambda r: _acc(r.final_acc), lambda r: r.final_acc),
    "teacher_acc": ("teacher %", lambda r: _acc(r.teacher_acc), lambda r: r.teacher_acc),
}
# --sort keys: ids start with the start time, so "started" sorts by id; "name" by the name.
SORTS = {"started": LS_COLUMNS["run"][2], "name": lambda r: r.name.lower(),
         **{key: column[2] for key, column in LS_COLUMNS.items() if key != "run"}}


def row_record(row) -> dict:
    """A run row for --format json/csv: plain values (numbers stay numbers)."""
    return {"id": row.id, "name": row.name, "status": row.status, "dataset": row.dataset,
            "student": row.student, "teacher": row.teacher, "method": row.method,
            "epochs_done": row.epochs_done, "epochs": row.epochs, "best_test_acc": row.best_acc,
            "final_test_acc": row.final_acc, "teacher_test_acc": row.teacher_acc,
            "wall_time_s": row.duration_s, "path": str(row.path)}


RECORD_FIELDS = ["id", "name", "status", "dataset", "student", "teacher", "method", "epochs_done",
                 "epochs", "best_test_acc", "final_test_acc", "teacher_test_acc", "wall_time_s", "path"]


@runs_app.command("ls")
def runs_ls(
    runs_dir: Optional[Path] = RunsDirOption,
    output: str = typer.Option("table", "--format", help="table, json or csv."),
    sort: str = typer.Option("started", "--sort", help="started, name, status, dataset, student, "
                             "teacher, method, epochs, best, final or teacher_acc."),
    ascending: bool = typer.Option(False, "--asc", help="Sort ascending (default: descending)."),
    query: Optional[str] = typer.Option(None, "--filter", help="Only runs whose id, status, dataset, "
                                        "networks or method hold every word, e.g. 'cifar10 amd'."),
) -> None:
    """List runs, newest first. Piped or redirected, the table is never cut to the terminal's
    width; --format json/csv are for scripts."""
    import csv
    import json
    import sys

    from kdtui.errors import KdtuiError
    from kdtui.store import list_run_rows, runs_root

    with user_errors():
        if output not in ("table", "json", "csv"):
            raise KdtuiError(f"--format: got {output!r}, expected table, json or csv.")
        if sort not in SORTS:
            raise KdtuiError(f"--sort: got {sort!r}, expected one of {', '.join(SORTS)}.")
    root = runs_root(runs_dir)
    rows = list_run_rows(root)
    if query:
        words = query.lower().split()
        rows = [row for row in rows if all(word in row.search_text() for word in words)]
    key = SORTS[sort]
    known = sorted((r for r in rows if key(r) is not None), key=key, reverse=not ascending)
    rows = known + [r for r in rows if key(r) is None]   # unknown values last either way
    if output == "json":
        json.dump([row_record(r) for r in rows], sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
        return
    if output == "csv":
        writer = csv.DictWriter(sys.stdout, fieldnames=RECORD_FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(row_record(r) for r in rows)
        return
    cells = [[text(row) for _, text, _ in LS_COLUMNS.values()] for row in rows]
    if not sys.stdout.isatty():
        # A file or a pipe: plain aligned columns, as wide as the content needs, never cut
        # (and cheap: 1,000 runs print in milliseconds).
        headers = [header for header, _, _ in LS_COLUMNS.values()]
        widths = [max(len(c) for c in column) for column in zip(headers, *cells)]
        right = [("%" in h or h == "epochs") for h in headers]
        for line in [headers, *cells]:
            sys.stdout.write("  ".join(c.rjust(w) if r else c.ljust(w)
                                       for c, w, r in zip(line, widths, right)).rstrip() + "\n")
        return
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False)
    table = Table(title=f"runs in {root}", title_justify="left", expand=False)
    for name, (header, _, _) in LS_COLUMNS.items():
        # Ids are what users copy: never truncated or wrapped.
        table.add_column(header, no_wrap=name == "run",
                         justify="right" if "%" in header or name == "epochs" else "left")
    for line in cells:
        table.add_row(*line)
    console.print(table)


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
    if summary is not None and (summary.world_size or 1) > 1:
        console.print(f"trained by {summary.world_size} processes (torchrun) on {summary.device}")
    console.print(json.dumps(summary.to_dict() if summary else {"status": "no summary yet"}, indent=2,
                             ensure_ascii=False))
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
