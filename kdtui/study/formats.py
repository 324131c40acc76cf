"""A results table as text, Markdown, CSV or LaTeX: what a terminal, a notebook or a
paper takes as it is.

Text is laid out here (never truncated, whatever the terminal); Markdown is a pipe table;
CSV has one number per cell (std empty when n = 1); LaTeX is a booktabs ``tabular``.

Usage::

    print(render(table, "md"))
"""

from __future__ import annotations

import csv
import io
from typing import Any, Callable

from kdtui.study.expand import show_value
from kdtui.study.table import GroupRow, Table

FORMATS = ("text", "md", "csv", "latex")


def number(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.2f}" if signed else f"{value:.2f}"


def mean_pm(row: GroupRow, pm: str = " ± ") -> str:
    if row.mean is None:
        return "-"
    return number(row.mean) + (pm + number(row.std) if row.std is not None else "")


def header_line(table: Table) -> str:
    what = f"{table.metric_label} (%): mean ± sample std over the runs of each group (seeds); ± omitted when n = 1"
    return f"{table.title}: {what}" if table.title else what


def columns(table: Table) -> list[str]:
    cols = [*table.keys, "n", f"{table.metric} acc %", "teacher %"]
    if table.has_reported:
        cols += ["paper %", "Δ"]
    if table.has_reported_teacher:
        cols += ["paper teacher %"]
    return cols


def cells(table: Table, row: GroupRow, pm: str = " ± ", escape: Callable[[str], str] = str) -> list[str]:
    out = [escape(show_value(v)) for v in row.values] + [str(row.n), mean_pm(row, pm), number(row.teacher)]
    if table.has_reported:
        out += [number(row.reported.value if row.reported else None), number(row.delta, signed=True)]
    if table.has_reported_teacher:
        out += [number(row.reported.teacher if row.reported else None)]
    return out


def unfinished_lines(table: Table) -> list[str]:
    if not table.unfinished:
        return []
    lines = [f"not finished (not averaged): {len(table.unfinished)} run(s)"]
    for r in table.unfinished:
        epochs = f"{r.epochs_done}/{r.epochs if r.epochs is not None else '?'} epochs"
        lines.append(f"  {r.id}  {r.status}  {epochs}")
    return lines


def aligned(head: list[str], body: list[list[str]], right: Callable[[int], bool]) -> list[str]:
    """Columns padded to their widest cell (nothing cut), a rule under the heading;
    ``right(i)``: whether column i is right-aligned."""
    widths = [max(len(c) for c in column) for column in zip(head, *body)]

    def line(values: list[str]) -> str:
        return "  ".join(v.rjust(w) if right(i) else v.ljust(w)
                         for i, (v, w) in enumerate(zip(values, widths))).rstrip()

    return [line(head), "  ".join("-" * w for w in widths)] + [line(values) for values in body]


def to_text(table: Table) -> str:
    body = [cells(table, row) for row in table.rows]
    lines = [header_line(table), *aligned(columns(table), body, lambda i: i >= len(table.keys))]
    if not body:
        lines.append("(no finished runs)")
    if table.sources:
        lines.append("paper: " + "; ".join(table.sources))
    return "\n".join(lines + unfinished_lines(table)) + "\n"


def to_markdown(table: Table) -> str:
    def esc(text: str) -> str:
        return text.replace("|", "\\|")

    head = columns(table)
    align = ["---" if i < len(table.keys) else "---:" for i in range(len(head))]
    lines = [f"**{esc(header_line(table))}**", "", "| " + " | ".join(map(esc, head)) + " |",
             "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(cells(table, row, escape=esc)) + " |" for row in table.rows]
    if table.sources:
        lines += ["", "Paper: " + esc("; ".join(table.sources)) + "."]
    return "\n".join(lines) + "\n"


def to_csv(table: Table) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*table.keys, "n", f"{table.metric}_acc_mean", f"{table.metric}_acc_std",
                     "teacher_acc_mean", "reported", "delta", "reported_teacher", "source"])

    def raw(value: float | None) -> Any:
        return "" if value is None else round(value, 4)

    for row in table.rows:
        rep = row.reported
        writer.writerow([*(show_value(v) if not isinstance(v, (int, float, str)) else v for v in row.values),
                         row.n, raw(row.mean), raw(row.std), raw(row.teacher),
                         raw(rep.value if rep else None), raw(row.delta),
                         raw(rep.teacher if rep else None), rep.source if rep else ""])
    return out.getvalue()


LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                 "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def latex_escape(text: str) -> str:
    return "".join(LATEX_SPECIAL.get(ch, ch) for ch in text)


def to_latex(table: Table) -> str:
    head = [latex_escape(c).replace("Δ", r"$\Delta$") for c in columns(table)]
    spec = "l" * len(table.keys) + "r" * (len(head) - len(table.keys))
    lines = [f"% {latex_escape(header_line(table))}", "% needs \\usepackage{booktabs}",
             f"\\begin{{tabular}}{{{spec}}}", r"\toprule", " & ".join(head) + r" \\", r"\midrule"]
    for row in table.rows:
        values = cells(table, row, pm=r" \pm ", escape=latex_escape)
        at = len(table.keys) + 1
        values[at] = f"${values[at]}$" if row.mean is not None else values[at]
        if row.delta is not None:          # a minus sign, not a hyphen
            values[at + 3] = f"${values[at + 3]}$"
        lines.append(" & ".join(values) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    if table.sources:
        lines.append("% paper: " + latex_escape("; ".join(table.sources)))
    return "\n".join(lines) + "\n"


def render(table: Table, fmt: str) -> str:
    return {"text": to_text, "md": to_markdown, "csv": to_csv, "latex": to_latex}[fmt](table)
