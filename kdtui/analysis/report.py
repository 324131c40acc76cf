"""The analysis as rich renderables: what ``kdtui eval`` prints and the app's analysis
screen shows — the numbers of student and teacher side by side, per-class accuracy and the
confusion matrix, the reliability diagram, the t-SNE scatters with their V-scores, and the
map grid of each image. Built from the cached results (:mod:`kdtui.analysis.results`).

Usage::

    console.print(numbers_table(report))
    for line in tsne_lines(embeddings, classes, width=120): console.print(line)
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from rich.table import Table
from rich.text import Text

from kdtui.analysis.features import Embedding
from kdtui.analysis.maps import MapSet
from kdtui.analysis.render import (colormap, image_cells, legend, map_cells, reliability_cells,
                                   resize_nearest, half_blocks, scatter_cells, side_by_side)

LABEL_WIDTH = 8


def _pct(value: Any) -> str:
    return "-" if value is None else f"{value:.2f}"


def numbers_table(report: dict[str, Any]) -> Table:
    """top-1, top-5, NLL, ECE of the student (and teacher), the agreement between them."""
    teacher = report.get("teacher")
    epoch = report.get("checkpoint_epoch")
    table = Table(title=f"{report.get('run', '?')} — {report.get('checkpoint', '?')} checkpoint"
                  + (f" (epoch {epoch})" if epoch else "")
                  + f", {report.get('n', '?')} test images of {report.get('dataset', '?')}",
                  title_justify="left")
    table.add_column("")
    table.add_column(f"student {report.get('student_arch', '')}".strip(), justify="right")
    if teacher:
        table.add_column(f"teacher {teacher.get('arch', '')}".strip(), justify="right")
    rows = [("top-1 (%)", "top1", _pct), ("top-5 (%)", "top5", _pct),
            ("NLL", "nll", lambda v: f"{v:.4f}"),
            (f"ECE ({report.get('ece_bins', 15)} bins, %)", "ece", lambda v: f"{100 * v:.2f}")]
    for title, key, fmt in rows:
        table.add_row(title, fmt(report[key]), *([fmt(teacher[key])] if teacher else []))
    if teacher:
        table.add_row("top-1 agreement (%)", _pct(report.get("teacher_agreement")), "")
    return table


def per_class_table(report: dict[str, Any], limit: int = 20) -> Table:
    """Accuracy per class (the worst ``limit`` when there are more), and the confusion matrix
    row by row when there are at most 12 classes."""
    classes = list(report.get("classes") or report["per_class_acc"])
    teacher = report.get("teacher")
    student_acc, confusion = report["per_class_acc"], report["confusion"]
    order = list(range(len(classes)))
    if len(classes) > limit:
        order = sorted(order, key=lambda c: (student_acc.get(classes[c]) is None, student_acc.get(classes[c]) or 0))[:limit]
    show_confusion = len(classes) <= 12
    table = Table(title="per class" + (f" (the {limit} worst)" if len(classes) > limit else "")
                  + (": accuracy (%) and the student's confusion matrix (rows true, columns predicted)"
                     if show_confusion else ": accuracy (%)"), title_justify="left")
    table.add_column("class")
    table.add_column("student", justify="right")
    if teacher:
        table.add_column("teacher", justify="right")
    if show_confusion:
        for c in range(len(classes)):
            table.add_column(classes[c][:4], justify="right", style="dim")
    for c in order:
        cells = [classes[c], _pct(student_acc.get(classes[c]))]
        if teacher:
            cells.append(_pct(teacher["per_class_acc"].get(classes[c])))
        if show_confusion:
            cells += [f"[bold]{n}[/]" if j == c else (str(n) if n else "·") for j, n in enumerate(confusion[c])]
        table.add_row(*cells)
    return table


def reliability_lines(report: dict[str, Any], width: int = 40) -> list[Text]:
    head = Text(f"reliability diagram of the student (ECE {100 * report['ece']:.2f}%): accuracy "
                "per confidence bin as a bar, the bin's mean confidence as │", style="bold")
    return [head, *reliability_cells(report["reliability"], width)]


def tsne_lines(embeddings: Sequence[Embedding], classes: Sequence[str], width: int = 100,
               height: int | None = None) -> list[Text]:
    """The models' scatters side by side (teacher first), V-scores above each, the legend below."""
    ordered = sorted(embeddings, key=lambda e: e.model != "teacher")
    panel = max(20, min(80, (width - 2 * (len(ordered) - 1)) // max(len(ordered), 1)))
    rows = height or max(10, min(24, panel // 2 - 2))   # a cell is two pixels tall: about square
    panels = [scatter_cells(e.xy, e.labels, panel, rows) for e in ordered]
    titles = [f"{e.model}: V {e.v_tsne:.4f} (t-SNE) {e.v_raw:.4f} (features)" for e in ordered]
    return [*side_by_side(panels, gap=2, titles=titles), legend(list(classes))]


def _cam_overlay(image: np.ndarray, cam: np.ndarray, size: int) -> list[Text]:
    """Grad-CAM in viridis blended half and half with the input image."""
    picture = resize_nearest(image.transpose(1, 2, 0), size, size)
    heat = colormap(resize_nearest(cam, size, size), 0.0, 1.0).astype(np.float64) / 255
    return half_blocks(np.rint(255 * np.clip(0.5 * picture + 0.5 * heat, 0, 1)).astype(np.uint8))


def map_panel_size(width: int, stages: int) -> int:
    """Pixels a side of each panel: as large as fits input, 2 maps per stage and Grad-CAM
    on one line of ``width`` columns beside the row label, but at least 8 (then the panels
    wrap onto more lines) and at most 32; even."""
    panels = 2 + 2 * stages
    size = (width - LABEL_WIDTH) // panels - 1
    return max(8, min(32, size - size % 2))


def maps_lines(maps: MapSet, width: int = 120, images: Sequence[int] | None = None) -> list[Text]:
    """Per image: a title line, then one row per model (teacher first): the input, Qp and Qn
    of each stage (each scaled to its own range, viridis), Grad-CAM over the input."""
    size = map_panel_size(width, maps.stages)
    per_line = max(1, (width - LABEL_WIDTH) // (size + 1))
    lines: list[Text] = [Text("Qp/Qn: the AMD loss's positive and negative attention maps per "
                              "stage (each scaled to its own range); Grad-CAM of the predicted class",
                              style="dim")]
    titles = ["input"] + [f"{kind}{s + 1}" for s in range(maps.stages) for kind in ("Qp", "Qn")] + ["CAM"]
    for k in (range(len(maps.labels)) if images is None else images):
        truth = maps.classes[int(maps.labels[k])]
        verdicts = ", ".join(f"{role} → {maps.classes[int(m.predicted[k])]}" for role, m in maps.models.items())
        lines.append(Text(f"test image #{int(maps.indices[k])}: {truth} ({verdicts})", style="bold"))
        image = maps.images[k].numpy()
        for row, (role, model) in enumerate(maps.models.items()):
            panels = [image_cells(image, size)]
            for stage in range(maps.stages):
                panels.append(map_cells(model.positive[stage][k].numpy(), size))
                panels.append(map_cells(model.negative[stage][k].numpy(), size))
            panels.append(_cam_overlay(image, model.cam[k].numpy(), size))
            for start in range(0, len(panels), per_line):
                label = role if start == 0 else ""
                chunk = [[Text(label[:LABEL_WIDTH - 1].ljust(LABEL_WIDTH - 1))]] + panels[start:start + per_line]
                named = None if row and per_line >= len(panels) else [""] + titles[start:start + per_line]
                lines.extend(side_by_side(chunk, titles=named))
    return lines
