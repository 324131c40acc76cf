"""`kdtui runs`: the runs viewer, and ls / show / rm for the shell and scripts.

Usage::

    kdtui runs                     # the viewer (a terminal), else this help
    kdtui runs ls --sort best --format csv > runs.csv
    kdtui runs ls --filter 'amd.weight>1000' --filter tag:baseline --columns train.lr --group-seeds
    kdtui runs tag RUN baseline · kdtui runs note RUN "text" · kdtui runs rename RUN NEW
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from kdtui.cli_common import RunsDirOption, open_group_screen, user_errors

runs_app = typer.Typer(help="Browse past runs: the runs viewer, or ls/show/rm/tag/note/rename.", invoke_without_command=True)


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
    "tags": ("tags", lambda r: ",".join(r.tags), lambda r: ",".join(r.tags)),
}
# --sort keys: ids start with the start time, so "started" sorts by id; "name" by the name.
SORTS = {"started": LS_COLUMNS["run"][2], "name": lambda r: r.name.lower(),
         **{key: column[2] for key, column in LS_COLUMNS.items() if key not in ("run", "tags")}}


def row_record(row) -> dict:
    """A run row for --format json/csv: plain values (numbers stay numbers)."""
    return {"id": row.id, "name": row.name, "status": row.status, "dataset": row.dataset,
            "student": row.student, "teacher": row.teacher, "method": row.method,
            "epochs_done": row.epochs_done, "epochs": row.epochs, "best_test_acc": row.best_acc,
            "final_test_acc": row.final_acc, "teacher_test_acc": row.teacher_acc,
            "wall_time_s": row.duration_s, "path": str(row.path), "tags": list(row.tags),
            "note": row.note}


RECORD_FIELDS = ["id", "name", "status", "dataset", "student", "teacher", "method", "epochs_done",
                 "epochs", "best_test_acc", "final_test_acc", "teacher_test_acc", "wall_time_s", "path",
                 "tags", "note"]
GROUP_FIELDS = ["n", "best_test_acc_std", "runs"]   # --group-seeds: best_test_acc is the mean


def _config_text(value: object) -> str:
    if value is None:
        return "-"
    return json.dumps(value) if not isinstance(value, str) else value


@runs_app.command("ls")
def runs_ls(
    runs_dir: Optional[Path] = RunsDirOption,
    output: str = typer.Option("table", "--format", help="table, json or csv."),
    sort: str = typer.Option("started", "--sort", help="started, name, status, dataset, student, "
                             "teacher, method, epochs, best, final or teacher_acc."),
    ascending: bool = typer.Option(False, "--asc", help="Sort ascending (default: descending)."),
    queries: Optional[List[str]] = typer.Option(
        None, "--filter", metavar="TERMS", help="Only runs matching every term (repeatable): words of the id, name, "
        "status, dataset, networks, method or tags ('cifar10 amd'); tag:NAME; or a config value "
        "KEY OP VALUE with OP = != > >= < <= and KEY a dotted key or its unique ending "
        "('loss.amd.weight>1000', 'lr=0.05')."),
    columns: Optional[str] = typer.Option(None, "--columns", metavar="KEY,…", help="Config values to add as columns, "
                                          "comma-separated keys (or unique endings), e.g. "
                                          "loss.amd.weight,train.lr."),
    group_seeds: bool = typer.Option(False, "--group-seeds", help="One row per set of finished runs "
                                     "that differ only in train.seed: n and mean ± sample std of "
                                     "best accuracy."),
) -> None:
    """List runs, newest first. Piped or redirected, the table is never cut to the terminal's
    width; --format json/csv are for scripts."""
    import csv
    import sys

    from kdtui.errors import KdtuiError
    from kdtui.store import list_run_rows, runs_root
    from kdtui.store.query import known_keys, parse_query, resolve_key

    with user_errors():
        if output not in ("table", "json", "csv"):
            raise KdtuiError(f"--format: got {output!r}, expected table, json or csv.")
        if sort not in SORTS:
            raise KdtuiError(f"--sort: got {sort!r}, expected one of {', '.join(SORTS)}.")
        query = parse_query(queries or [])
        root = runs_root(runs_dir)
        rows = query.filter(list_run_rows(root))
        wanted = [key.strip() for key in (columns or "").split(",") if key.strip()]
        keys = known_keys(rows) if wanted else set()
        config_keys = list(dict.fromkeys(resolve_key(key, keys) for key in wanted))
    groups = None
    if group_seeds:
        from kdtui.study.formats import mean_pm
        from kdtui.study.table import group_by_seed

        with user_errors():
            groups = {group.row.id: group for group in group_by_seed(rows)}
        rows = [group.row for group in groups.values()]
    key = SORTS[sort]
    known = sorted((r for r in rows if key(r) is not None), key=key, reverse=not ascending)
    rows = known + [r for r in rows if key(r) is None]   # unknown values last either way

    def record(row) -> dict:
        out = row_record(row)
        if groups is not None:
            group = groups[row.id]
            out.update(n=group.n, best_test_acc_std=group.std, runs=[r.id for r in group.rows])
        out.update({name: row.config().get(name) for name in config_keys})
        return out

    if output == "json":
        json.dump([record(r) for r in rows], sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
        return
    if output == "csv":
        fields = RECORD_FIELDS + (GROUP_FIELDS if groups is not None else []) + config_keys
        writer = csv.DictWriter(sys.stdout, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            out = record(row)
            out["tags"] = " ".join(out["tags"])
            if groups is not None:
                out["runs"] = " ".join(out["runs"])
            writer.writerow(out)
        return
    shown = dict(LS_COLUMNS)
    if groups is not None:
        shown["best"] = ("best % (mean ± std)", lambda r: mean_pm(groups[r.id]), None)
        shown["final"] = ("final % (mean)", shown["final"][1], None)
        shown["n"] = ("n", lambda r: str(groups[r.id].n), None)
    for name in config_keys:
        shown[name] = (name, lambda r, name=name: _config_text(r.config().get(name)), None)
    headers = [header for header, _, _ in shown.values()]
    right = [("%" in h or h in ("epochs", "n") or h in config_keys) for h in headers]
    cells = [[text(row) for _, text, _ in shown.values()] for row in rows]
    if not sys.stdout.isatty():
        # A file or a pipe: plain aligned columns, as wide as the content needs, never cut
        # (and cheap: 1,000 runs print in milliseconds).
        widths = [max(len(c) for c in column) for column in zip(headers, *cells)]
        for line in [headers, *cells]:
            sys.stdout.write("  ".join(c.rjust(w) if r else c.ljust(w)
                                       for c, w, r in zip(line, widths, right)).rstrip() + "\n")
        return
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False)
    table = Table(title=f"runs in {root}", title_justify="left", expand=False)
    for name, header, is_right in zip(shown, headers, right):
        # Ids are what users copy: never truncated or wrapped.
        table.add_column(header, no_wrap=name == "run", justify="right" if is_right else "left")
    for line in cells:
        table.add_row(*line)
    console.print(table)


def _labelled(runs_dir: Optional[Path], run_ref: str, change) -> None:
    from kdtui.store import resolve_run, runs_root

    with user_errors():
        run = resolve_run(runs_root(runs_dir), run_ref)
        labels = change(run)
    tags = ", ".join(labels.tags) or "none"
    print(f"{run.id}: name {labels.name or '(folder name)'} · tags {tags}"
          + (f" · note: {labels.note}" if labels.note else ""))


@runs_app.command("tag")
def runs_tag(run_ref: str = typer.Argument(..., metavar="RUN", help="Run id, name or folder."),
             tags: List[str] = typer.Argument(..., metavar="TAG...", help="Tags, e.g. baseline."),
             remove: bool = typer.Option(False, "--remove", help="Remove these tags instead."),
             runs_dir: Optional[Path] = RunsDirOption) -> None:
    """Tag a run (kept in its labels.json; `runs ls --filter tag:NAME` finds it)."""
    from kdtui.store.labels import set_tags

    _labelled(runs_dir, run_ref, lambda run: set_tags(run, remove=tags) if remove else set_tags(run, add=tags))


@runs_app.command("note")
def runs_note(run_ref: str = typer.Argument(..., metavar="RUN", help="Run id, name or folder."),
              text: str = typer.Argument(..., help="The note ('' clears it)."),
              runs_dir: Optional[Path] = RunsDirOption) -> None:
    """Set a run's free-text note (shown in the runs viewer's detail pane)."""
    from kdtui.store.labels import set_note

    _labelled(runs_dir, run_ref, lambda run: set_note(run, text))


@runs_app.command("rename")
def runs_rename(run_ref: str = typer.Argument(..., metavar="RUN", help="Run id, name or folder."),
                name: str = typer.Argument(..., metavar="NEW", help="The name to show (its folder's "
                                           "own name clears it)."),
                runs_dir: Optional[Path] = RunsDirOption) -> None:
    """Give a run a display name. Its folder and id stay, so teacher references, studies and
    open dashboards keep finding it; `kdtui runs show NEW` works."""
    from kdtui.store.labels import rename_run

    _labelled(runs_dir, run_ref, lambda run: rename_run(run, name))


@runs_app.command("show")
def runs_show(run_ref: str = typer.Argument(..., metavar="RUN", help="Run id or folder."),
              runs_dir: Optional[Path] = RunsDirOption) -> None:
    """Show one run: its summary, config and per-epoch metrics."""
    import yaml
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from kdtui.store import resolve_run, runs_root

    with user_errors():
        run_dir = resolve_run(runs_root(runs_dir), run_ref)
    console = Console(highlight=False)
    console.print(f"[bold]{run_dir.id}[/]  {run_dir.path}")
    labels = run_dir.labels()
    for label, value in (("name", labels.name), ("tags", " ".join(labels.tags)), ("note", labels.note)):
        if value:
            console.print(f"[bold]{label}[/] {escape(value)}")
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
