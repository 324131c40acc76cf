"""The studies of a runs folder, read again cheaply while they run, and what their plot shows.

:class:`StudyReader` keeps each run's :class:`~kdtui.study.table.RunResult` and reads a run
again only when its ``summary.json`` changed (or while it is live: whether its process
still runs can change without the file changing), so polling a runs folder of many runs
costs a ``stat`` per run. :func:`plot_lines` turns a results table into one line per
method/teacher over the swept value, with the mean and sample std of each point.

Usage::

    reader = StudyReader(runs_root())
    studies = reader.read()                       # {"gamma": [RunResult, ...], ...}
    table = build_table(studies["gamma"], metric="best")
    xlabel, lines = plot_lines(table)
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

from kdtui.store import LIVE, iter_runs
from kdtui.study.expand import show_value
from kdtui.study.table import RunResult, Table, read_result


class StudyReader:
    """The runs of every study in ``root``, by study id (runs of no study left out)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._known: dict[Path, tuple[int | None, RunResult]] = {}
        self._lock = threading.Lock()   # one read at a time (a poll may overlap the last)

    def read(self) -> dict[str, list[RunResult]]:
        with self._lock:
            seen: dict[Path, tuple[int | None, RunResult]] = {}
            for run in iter_runs(self.root):
                try:
                    stamp: int | None = run.summary_path.stat().st_mtime_ns
                except OSError:
                    stamp = None
                known = self._known.get(run.path)
                if known is not None and known[0] == stamp and known[1].status not in LIVE:
                    seen[run.path] = known
                else:
                    seen[run.path] = (stamp, read_result(run))
            self._known = seen
            studies: dict[str, list[RunResult]] = {}
            for _, result in seen.values():
                if result.study_id is not None:
                    studies.setdefault(result.study_id, []).append(result)
            return dict(sorted(studies.items()))


@dataclass
class Line:
    """One method/teacher: its mean accuracy (and sample std, None when n = 1) per x."""

    label: str
    xs: list[float] = field(default_factory=list)
    means: list[float] = field(default_factory=list)
    stds: list[float | None] = field(default_factory=list)
    ticks: dict[float, str] = field(default_factory=dict)   # x → the value it stands for


def is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def plot_lines(table: Table) -> tuple[str, list[Line]]:
    """(x axis label, lines). The x axis is the first grouping key whose values are all
    numbers (γ, the margin); without one, the first key's values in table order (1, 2, …,
    say which in ``Line.ticks``). The other keys make one line each (method, teacher)."""
    rows = [row for row in table.rows if row.mean is not None]
    keys = table.keys
    numeric = [i for i, _ in enumerate(keys) if rows and all(is_number(row.values[i]) for row in rows)]
    at = numeric[0] if numeric else (0 if keys else None)
    positions: dict[str, float] = {}
    lines: dict[str, Line] = {}
    for row in rows:
        if at is None:
            x, tick = 1.0, "all"
        elif numeric:
            x, tick = float(row.values[at]), show_value(row.values[at])
        else:
            tick = show_value(row.values[at])
            x = positions.setdefault(tick, float(len(positions) + 1))
        label = ", ".join(f"{key}={show_value(value)}" for i, (key, value) in enumerate(zip(keys, row.values))
                          if i != at) or table.metric_label
        line = lines.setdefault(label, Line(label))
        line.xs.append(x)
        line.means.append(row.mean)  # type: ignore[arg-type]
        line.stds.append(row.std)
        line.ticks[x] = tick
    for line in lines.values():   # left to right
        order = sorted(range(len(line.xs)), key=line.xs.__getitem__)
        line.xs, line.means, line.stds = ([seq[i] for i in order] for seq in (line.xs, line.means, line.stds))
    xlabel = keys[at] if at is not None else ""
    if at is not None and not numeric:
        xlabel += " (1, 2, …: its values in table order)"
    return xlabel, list(lines.values())
