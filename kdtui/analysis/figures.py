"""Figures for a paper with matplotlib: training curves of one or several runs, the
reliability diagram, the t-SNE scatter and the attention-map grid.

Publication defaults (:data:`STYLE`): vector output with embedded TrueType fonts (PDF) or
text kept as text (SVG), 7–9 pt sans-serif, no top/right spines, Okabe–Ito colours for
runs and Paul Tol's muted colours for classes (both colour-blind safe). Figures are built
on :class:`matplotlib.figure.Figure` without pyplot, so no GUI backend is touched, and are
written atomically.

Usage::

    fig = curves_figure([("kd", run_a.epochs()), ("amd", run_b.epochs())])
    save_figure(fig, Path("curves.pdf"))
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any, Callable, Sequence

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from kdtui.analysis.features import Embedding
from kdtui.analysis.loading import never
from kdtui.analysis.maps import MapSet
from kdtui.analysis.render import PALETTE
from kdtui.errors import KdtuiError
from kdtui.store import atomic_write_bytes

FORMATS = ("pdf", "png", "svg")
OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
STYLE = {
    "font.family": "sans-serif", "font.size": 8, "axes.titlesize": 8, "axes.labelsize": 8,
    "legend.fontsize": 7, "xtick.labelsize": 7, "ytick.labelsize": 7, "lines.linewidth": 1.2,
    "axes.linewidth": 0.6, "axes.spines.top": False, "axes.spines.right": False,
    "axes.prop_cycle": matplotlib.cycler(color=OKABE_ITO), "legend.frameon": False,
    "pdf.fonttype": 42, "ps.fonttype": 42, "svg.fonttype": "none", "savefig.dpi": 300,
    "savefig.bbox": "tight", "savefig.pad_inches": 0.02, "image.interpolation": "nearest",
}
FULL_WIDTH = 7.0   # inches: a two-column paper's text width


def class_colour(index: int, count: int) -> Any:
    if count <= len(PALETTE):
        return PALETTE[index]
    return matplotlib.colormaps["hsv"](index / count)


def _figure(width: float, height: float) -> Figure:
    with matplotlib.rc_context(STYLE):
        return Figure(figsize=(width, height), layout="constrained")


def save_figure(fig: Figure, path: Path, dpi: int | None = None) -> Path:
    """Write ``fig`` as PDF, PNG or SVG (from the suffix), atomically."""
    kind = path.suffix.lower().lstrip(".")
    if kind not in FORMATS:
        raise KdtuiError(f"--out: {path.name} should end in .pdf, .png or .svg (got {path.suffix or 'no suffix'}).")
    buffer = io.BytesIO()
    metadata = {"Creator": "kdtui"} if kind in ("pdf", "svg") else {"Software": "kdtui"}
    with matplotlib.rc_context(STYLE):
        fig.savefig(buffer, format=kind, dpi=dpi or STYLE["savefig.dpi"], metadata=metadata)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, buffer.getvalue())
    except OSError as exc:
        raise KdtuiError(f"--out: cannot write {path}: {exc.strerror or exc}.") from None
    return path


def curves_figure(runs: Sequence[tuple[str, Sequence[Any]]]) -> Figure:
    """Test (solid) and train (dashed) accuracy, then every loss term and the total, per
    epoch; one colour per run (``runs``: (name, its EpochRecords))."""
    terms: list[str] = []
    for _, epochs in runs:
        for epoch in epochs:
            terms.extend(t for t in epoch.loss if t not in terms and t != "total")
    panels = ["accuracy"] + terms + ["total"]
    cols = min(4, len(panels))
    rows = math.ceil(len(panels) / cols)
    with matplotlib.rc_context(STYLE):
        fig = _figure(FULL_WIDTH, 1.7 * rows + 0.35)
        axes = fig.subplots(rows, cols, squeeze=False).ravel()
        for index, (name, epochs) in enumerate(runs):
            colour = OKABE_ITO[index % len(OKABE_ITO)]
            x = [e.epoch for e in epochs]
            for key, style in (("test_acc", "-"), ("train_acc", "--")):
                axes[0].plot(x, [e.value(key) if e.value(key) is not None else np.nan for e in epochs],
                             style, color=colour, label=name if key == "test_acc" else None)
            for ax, term in zip(axes[1:], panels[1:]):
                ax.plot(x, [e.loss.get(term, np.nan) for e in epochs], color=colour)
        for ax in axes:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes[0].set_title("accuracy (%)")
        axes[0].legend(handles=[Line2D([], [], color="0.3", linestyle=style, label=label)
                                for style, label in (("-", "test"), ("--", "train"))], loc="lower right")
        for ax, term in zip(axes[1:], panels[1:]):
            ax.set_title(f"loss {term}")
            values = [v for line in ax.get_lines() for v in line.get_ydata() if v == v and v > 0]
            if values and max(values) / min(values) > 100:
                ax.set_yscale("log")
        for ax in axes[:len(panels)]:
            ax.set_xlabel("epoch")
        for ax in axes[len(panels):]:
            ax.set_visible(False)
        fig.legend(loc="outside lower center", ncol=min(len(runs), 4))
    return fig


def reliability_figure(panels: Sequence[tuple[str, dict[str, Any]]]) -> Figure:
    """Per model: accuracy per confidence bin (bars) against the diagonal, the gap shaded,
    ECE in the corner; below, how many samples each bin holds."""
    with matplotlib.rc_context(STYLE):
        fig = _figure(min(2.4 * len(panels), FULL_WIDTH), 2.9)
        axes = fig.subplots(2, len(panels), squeeze=False, height_ratios=(3, 1), sharex=True)
        for col, (title, report) in enumerate(panels):
            bins = report["reliability"]
            centres = [(b["lower"] + b["upper"]) / 2 for b in bins]
            width = bins[0]["upper"] - bins[0]["lower"] if bins else 1.0
            acc = [b["accuracy"] if b["count"] else 0.0 for b in bins]
            conf = [b["confidence"] if b["count"] else c for b, c in zip(bins, centres)]
            top, bottom = axes[0, col], axes[1, col]
            top.bar(centres, acc, width=width, color=OKABE_ITO[0], edgecolor="white", linewidth=0.4,
                    label="accuracy")
            top.bar(centres, [c - a if b["count"] else 0 for a, c, b in zip(acc, conf, bins)], bottom=acc,
                    width=width, fill=False, hatch="/////", edgecolor=OKABE_ITO[3], linewidth=0.4,
                    label="gap")
            top.plot([0, 1], [0, 1], "--", color="0.4", linewidth=0.8)
            top.set(xlim=(0, 1), ylim=(0, 1), title=title, ylabel="accuracy" if col == 0 else None)
            top.text(0.04, 0.93, f"ECE {100 * report['ece']:.2f}%\nNLL {report['nll']:.3f}\n"
                     f"top-1 {report['top1']:.2f}%", va="top", fontsize=7, transform=top.transAxes)
            bottom.bar(centres, [b["count"] for b in bins], width=width, color="0.55")
            bottom.set(xlabel="confidence", ylabel="count" if col == 0 else None)
        axes[0, 0].legend(loc="center left", bbox_to_anchor=(0.0, 0.6))
    return fig


def tsne_figure(embeddings: Sequence[Embedding], class_names: Sequence[str],
                archs: dict[str, str] | None = None) -> Figure:
    """One t-SNE scatter per model, points coloured by true class, V-scores in the title."""
    count = len(class_names)
    with matplotlib.rc_context(STYLE):
        fig = _figure(min(3.2 * len(embeddings), FULL_WIDTH), 3.5)
        axes = fig.subplots(1, len(embeddings), squeeze=False).ravel()
        for ax, emb in zip(axes, embeddings):
            colours = [class_colour(int(c), count) for c in emb.labels]
            ax.scatter(emb.xy[:, 0], emb.xy[:, 1], c=colours, s=3, linewidths=0, rasterized=True)
            name = f"{emb.model} {archs.get(emb.model, '')}" if archs else emb.model
            ax.set_title(f"{name.strip()}\nV = {emb.v_tsne:.4f} (t-SNE), {emb.v_raw:.4f} (features)")
            ax.set(xticks=[], yticks=[])
            for side in ("left", "bottom"):
                ax.spines[side].set_visible(False)
        handles = [Line2D([], [], marker="o", linestyle="", markersize=4,
                                           color=class_colour(i, count), label=name)
                   for i, name in enumerate(class_names[:20])]
        fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 5))
    return fig


def maps_figure(maps: MapSet, images: Sequence[int] | None = None) -> Figure:
    """Rows: each image × each model (teacher first); columns: the input, the positive and
    negative map of each stage (each scaled to its own range), Grad-CAM over the input."""
    chosen = list(range(len(maps.labels))) if images is None else list(images)
    roles = list(maps.models)
    stages = maps.stages
    cols = 2 + 2 * stages
    rows = len(chosen) * len(roles)
    with matplotlib.rc_context(STYLE):
        fig = _figure(min(0.78 * cols + 0.9, FULL_WIDTH), 0.82 * rows + 0.3)
        axes = fig.subplots(rows, cols, squeeze=False)
        for block, k in enumerate(chosen):
            image = maps.images[k].permute(1, 2, 0).numpy()
            for offset, role in enumerate(roles):
                row = block * len(roles) + offset
                model = maps.models[role]
                panels = [image] + [m[k].numpy() for s in range(stages)
                                    for m in (model.positive[s], model.negative[s])]
                for col, panel in enumerate(panels):
                    axes[row, col].imshow(panel, cmap=None if col == 0 else "viridis")
                axes[row, -1].imshow(image)
                axes[row, -1].imshow(model.cam[k].numpy(), cmap="inferno", alpha=0.55, vmin=0, vmax=1)
                predicted = maps.classes[int(model.predicted[k])]
                truth = f"#{int(maps.indices[k])} {maps.classes[int(maps.labels[k])]}\n" if offset == 0 else ""
                axes[row, 0].set_ylabel(f"{truth}{role} {model.arch}\n→ {predicted}", fontsize=6)
        titles = ["input"] + [f"{kind} {s + 1}" for s in range(stages) for kind in ("Qp", "Qn")] + ["Grad-CAM"]
        for ax, title in zip(axes[0], titles):
            ax.set_title(title, fontsize=7)
        for ax in axes.ravel():
            ax.set(xticks=[], yticks=[])
            for spine in ax.spines.values():
                spine.set_visible(False)
    return fig


def save_map_pngs(maps: MapSet, folder: Path, cancelled: Callable[[], bool] = never) -> list[Path]:
    """One PNG per image: ``image-<k>-test<index>.png`` (older ones removed first)."""
    from kdtui.analysis.loading import Cancelled

    for old in folder.glob("image-*.png"):
        old.unlink(missing_ok=True)
    paths = []
    for k in range(len(maps.labels)):
        if cancelled():
            raise Cancelled
        path = folder / f"image-{k + 1:02d}-test{int(maps.indices[k])}.png"
        paths.append(save_figure(maps_figure(maps, [k]), path, dpi=150))
    return paths
