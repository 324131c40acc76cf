"""Results over seeds: runs grouped by config keys, with mean ± sample std per group.

The runs are read through the store's typed records (summary) and their config.yaml,
flattened (``loss.amd.weight``). By default the groups are made by the keys that vary
among the runs, seeds left out and keys that follow from others dropped (Table 9's
points vary by preset; its students, teachers and losses follow from it). The paper's
numbers come from the runs' recorded study (``Summary.study.reported``), so a runs folder
is all a table needs.

Usage::

    results = collect_runs(runs_root(), study="gamma")
    table = build_table(results, metric="best")
    for row in table.rows: print(row.values, row.n, row.mean, row.std)
    groups = group_by_seed(list_run_rows(runs_root()))   # `runs ls --group-seeds`, the viewer's g
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kdtui.errors import KdtuiError
from kdtui.store import RunDir, RunRow, effective_status, iter_runs, resolve_run
from kdtui.study.expand import RUN_ONLY_KEYS, SEED_KEY, flatten, point_key
from kdtui.study.spec import Reported

METRICS = {"best": "best test accuracy", "final": "final test accuracy"}
# Never grouped by default: seeds (averaged over) and what only says where/how a run ran.
NOT_GROUPED = (SEED_KEY, *RUN_ONLY_KEYS)


@dataclass
class RunResult:
    run: RunDir
    status: str
    config: dict[str, Any]              # flattened config.yaml
    best: float | None = None
    final: float | None = None
    teacher: float | None = None
    epochs_done: int = 0
    epochs: int | None = None
    study_id: str | None = None
    point: dict[str, Any] = field(default_factory=dict)
    index: int | None = None
    reported: Reported | None = None

    @property
    def id(self) -> str:
        return self.run.id

    def value(self, key: str) -> Any:
        """A study point's value as its study file wrote it (1000, not the config's 1000.0),
        else the config's."""
        if key in self.point:
            return self.point[key]
        return self.config.get(key)

    def accuracy(self, metric: str) -> float | None:
        return self.best if metric == "best" else self.final


def read_result(run: RunDir) -> RunResult:
    summary = run.summary()
    config = run.read_config()
    result = RunResult(run, effective_status(summary, config is not None), flatten(config or {}))
    if summary is not None:
        result.best, result.final = summary.best_test_acc, summary.final_test_acc
        result.teacher = summary.teacher_test_acc
        result.epochs_done, result.epochs = summary.epochs_done, summary.epochs
        record = summary.study_record
        if record is not None:
            result.study_id, result.point, result.index = record.id, dict(record.point or {}), record.index
            result.reported = Reported.from_record(record.reported)
    return result


def collect_runs(root: Path, refs: list[str] | tuple[str, ...] = (), study: str | None = None) -> list[RunResult]:
    """The runs named by ``refs`` (ids, names, folders) and those of study ``study``; every
    run of the runs folder when neither is given."""
    chosen: dict[Path, RunDir] = {}
    for ref in refs:
        run = resolve_run(root, ref)
        chosen[run.path] = run
    results = [read_result(run) for run in chosen.values()]
    if study is not None or not refs:
        for run in iter_runs(root):
            if run.path in chosen:
                continue
            result = read_result(run)
            if study is None or result.study_id == study:
                results.append(result)
    if study is not None and not any(r.study_id == study for r in results):
        raise KdtuiError(f"No run of study {study!r} in {root}. Run it with `kdtui sweep`, or give "
                         "the runs folder it used with --runs-dir.")
    if not results:
        raise KdtuiError(f"No runs in {root}. Give run ids, --study ID, or --runs-dir.")
    return results


def _cell(value: Any) -> str:
    return point_key(value)     # canonical: 1000 and 1000.0 fall in one group


def default_keys(results: list[RunResult]) -> list[str]:
    """The keys that vary among the runs (study point keys first), minus seeds and keys
    implied by the keys already chosen."""
    point_keys = [k for r in results for k in r.point]
    config_keys = [k for r in results for k in r.config]
    ordered = list(dict.fromkeys(["preset"] + point_keys + config_keys))
    chosen: list[str] = []
    for key in ordered:
        if key in NOT_GROUPED:
            continue
        if len({_cell(r.value(key)) for r in results}) < 2:
            continue
        # Implied: two runs alike in the chosen keys never differ in this one.
        seen: dict[str, str] = {}
        implied = True
        for r in results:
            label, cell = _cell([r.value(k) for k in chosen]), _cell(r.value(key))
            if seen.setdefault(label, cell) != cell:
                implied = False
                break
        if not implied or not chosen:
            chosen.append(key)
    return chosen


@dataclass
class GroupRow:
    values: list[Any]
    runs: list[RunResult]
    n: int = 0
    mean: float | None = None
    std: float | None = None           # sample std (ddof=1); None when n < 2
    teacher: float | None = None       # mean of the runs' teacher accuracies
    reported: Reported | None = None

    @property
    def delta(self) -> float | None:
        return self.mean - self.reported.value if self.mean is not None and self.reported else None


@dataclass
class Table:
    keys: list[str]
    metric: str
    rows: list[GroupRow]
    unfinished: list[RunResult]
    title: str = ""

    @property
    def metric_label(self) -> str:
        return METRICS[self.metric]

    @property
    def has_reported(self) -> bool:
        return any(row.reported is not None for row in self.rows)

    @property
    def has_reported_teacher(self) -> bool:
        return any(row.reported is not None and row.reported.teacher is not None for row in self.rows)

    @property
    def sources(self) -> list[str]:
        return list(dict.fromkeys(r.reported.source for r in self.rows if r.reported and r.reported.source))


def mean_std(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


def build_table(results: list[RunResult], metric: str = "best", by: list[str] | None = None,
                title: str = "") -> Table:
    if metric not in METRICS:
        raise KdtuiError(f"--metric: got {metric!r}, expected best or final.")
    keys = list(by) if by else default_keys(results)
    for key in keys:
        if not any(key in r.config or key in r.point for r in results):
            known = sorted({k for r in results for k in r.config})
            import difflib

            close = difflib.get_close_matches(key, known, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise KdtuiError(f"--by: no run has the config key {key!r}.{hint} Keys are flattened "
                             "config keys such as loss.amd.weight or teacher.preset.")
    finished = [r for r in results if r.status == "finished" and r.accuracy(metric) is not None]
    unfinished = [r for r in results if r not in finished]
    groups: dict[str, GroupRow] = {}
    for result in finished:
        values = [result.value(k) for k in keys]
        row = groups.setdefault(_cell(values), GroupRow(values, []))
        row.runs.append(result)
    for row in groups.values():
        row.n = len(row.runs)
        row.mean, row.std = mean_std([r.accuracy(metric) for r in row.runs])  # type: ignore[misc]
        row.teacher = mean_std([r.teacher for r in row.runs if r.teacher is not None])[0]
        row.reported = next((r.reported for r in row.runs if r.reported is not None), None)
    rows = sorted(groups.values(), key=lambda row: _order(row, keys))
    return Table(keys, metric, rows, unfinished, title)


def _order(row: GroupRow, keys: list[str]) -> tuple:
    index = min((r.index for r in row.runs if r.index is not None), default=math.inf)
    return (index, [_sortable(v) for v in row.values])


def _sortable(value: Any) -> tuple:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, float(value), "")
    return (1, 0.0, _cell(value))


# --- runs that differ only in their seed, for the runs list ---------------------------------

@dataclass
class SeedGroup:
    """Runs alike but for their seed (and run-only keys such as the device): one row of
    ``runs ls --group-seeds`` and of the runs viewer's grouped view."""

    rows: list[RunRow]                  # newest first
    mean: float | None = None           # of the runs' best test accuracies
    std: float | None = None            # sample std (ddof=1); None when fewer than 2

    @property
    def n(self) -> int:
        return len(self.rows)

    @property
    def row(self) -> RunRow:
        """The newest run, its best and final accuracies replaced by the group's means: what
        is listed, sorted and opened for the group (never one seed's number beside a mean)."""
        finals = [row.final_acc for row in self.rows]
        final = None if None in finals else statistics.fmean(finals)  # type: ignore[arg-type]
        return dataclasses.replace(self.rows[0], best_acc=self.mean, final_acc=final)


def result_of_row(row: RunRow) -> RunResult:
    """A listed run as :func:`build_table` takes it, from what the listing read (its config
    read on first use)."""
    return RunResult(RunDir(row.path), row.status, row.config(), best=row.best_acc,
                     final=row.final_acc, teacher=row.teacher_acc, epochs_done=row.epochs_done,
                     epochs=row.epochs)


def group_by_seed(rows: list[RunRow]) -> list[SeedGroup]:
    """Finished runs grouped by every config key but the seed (and run-only keys), with
    mean ± std of best accuracy (:func:`build_table`'s statistics); a run not finished is a
    group of its own. Reads the runs' config.yaml: call it in a worker for many runs."""
    by_id = {row.id: row for row in rows}
    results = [result_of_row(row) for row in rows]
    keys = sorted({key for r in results for key in r.config} - set(NOT_GROUPED))
    groups = []
    if keys and any(r.status == "finished" and r.best is not None for r in results):
        table = build_table(results, "best", by=keys)
        for group in table.rows:
            members = sorted((by_id[r.id] for r in group.runs), key=lambda row: row.id, reverse=True)
            groups.append(SeedGroup(members, group.mean, group.std))
        alone = table.unfinished
    else:
        alone = results
    groups += [SeedGroup([by_id[r.id]], r.best) for r in alone]
    return sorted(groups, key=lambda group: group.rows[0].id, reverse=True)
