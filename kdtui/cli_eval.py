"""The analysis commands: ``kdtui eval`` (numbers, calibration, t-SNE, attention maps of a
run, in the terminal and cached in its ``eval/``) and ``kdtui plot`` (figures for a paper).

Registered on the main app by :func:`register`. torch, scikit-learn, matplotlib and
grad-cam are imported inside the commands, so ``kdtui --help`` and training never load them.

Usage::

    kdtui eval quickstart --tsne --maps
    kdtui eval 20261130-101500-quickstart --json --save-logits
    kdtui plot kd amd --what curves --out curves.pdf
    kdtui plot quickstart --what tsne --out tsne.pdf
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Optional

import typer

from kdtui.errors import KdtuiError

RunsDir = typer.Option(None, "--runs-dir", help="Runs folder (default $KDTUI_RUNS_DIR or ./runs).")
Checkpoint = typer.Option("best", "--checkpoint", help="best or last.")
KINDS = ("curves", "reliability", "tsne", "maps")


def evaluate(
    run_ref: str = typer.Argument(..., metavar="RUN", help="Run id, name or folder."),
    checkpoint: str = Checkpoint,
    as_json: bool = typer.Option(False, "--json", help="Print eval.json (with the t-SNE V-scores "
                                 "under \"tsne\" when --tsne) instead of tables and pictures."),
    save_logits: bool = typer.Option(False, "--save-logits", help="Also write eval/logits.pt: the "
                                     "student's test logits [N, C] float32 and labels [N]."),
    tsne: bool = typer.Option(False, "--tsne", help="t-SNE of the penultimate features of a "
                              "stratified test subset, student and teacher, with V-measures."),
    points: int = typer.Option(2000, "--n", min=4, help="Points in the t-SNE subset (at most the "
                               "test set)."),
    maps: bool = typer.Option(False, "--maps", help="Positive/negative attention maps per stage "
                              "(as the AMD loss sees them) and Grad-CAM, for --images test images."),
    images: int = typer.Option(8, "--images", min=1, max=64, help="Test images for --maps."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of the subsets, t-SNE and k-means."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N."),
    runs_dir: Optional[Path] = RunsDir,
) -> None:
    """Evaluate a run on its own test set in float32: top-1/top-5 accuracy, NLL, ECE (15 bins)
    with the reliability diagram, per-class accuracy and confusion matrix; for a distilled run
    the teacher's numbers beside them and the top-1 agreement. Saved in the run's eval/
    (eval.json; tsne.csv and tsne.json; maps/*.png and maps.pt)."""
    from kdtui.cli_common import user_errors
    from kdtui.store import resolve_run, runs_root

    with user_errors():
        run = resolve_run(runs_root(runs_dir), run_ref)
        from kdtui.analysis.pipeline import Options, analyse

        options = Options(checkpoint=checkpoint, device=device, tsne=tsne, points=points, maps=maps,
                          images=images, seed=seed, save_logits=save_logits)
        result = analyse(run, options, progress=_progress_printer())
    if as_json:
        out = dict(result.report)
        if result.tsne_meta is not None:
            out["tsne"] = {e.model: {"v_tsne": e.v_tsne, "v_raw": e.v_raw} for e in result.embeddings or []}
        sys.stdout.write(json.dumps(out, indent=1) + "\n")
        return
    _print_result(run, result)


def _progress_printer():  # noqa: ANN202
    """Progress on stderr: rewritten in place on a terminal, else one line per step (a step
    is named by its first three words: "evaluating the student: 256/1000 …")."""
    terminal = sys.stderr.isatty()
    steps: list[str] = []

    def show(text: str, fraction: float) -> None:
        if terminal:
            sys.stderr.write("\r\033[K" + (f"{text} ({100 * fraction:.0f}%)" if fraction < 1 else ""))
            sys.stderr.flush()
        elif fraction < 1 and " ".join(text.split()[:3]) not in steps:
            steps.append(" ".join(text.split()[:3]))
            print(text, file=sys.stderr)

    return show


def _print_result(run, result) -> None:  # noqa: ANN001
    from rich.console import Console
    from rich.text import Text

    from kdtui.analysis import report as show

    console = Console(highlight=False)
    width = min(console.width, 160)
    report = result.report
    console.print(show.numbers_table(report))
    console.print(show.per_class_table(report))
    for line in show.reliability_lines(report, width=max(20, min(50, width - 45))):
        console.print(line, overflow="crop", no_wrap=True)
    pictures = [("t-SNE", result.embeddings and show.tsne_lines(result.embeddings, report["classes"], width=width)),
                ("maps", result.maps is not None and show.maps_lines(result.maps, width=width))]
    for name, lines in pictures:
        if lines and console.is_terminal:  # colour is the picture: none without a terminal
            console.print()
            for line in lines:
                console.print(line, overflow="crop", no_wrap=True)
        elif lines:
            console.print(f"{name}: drawn on a terminal only (FORCE_COLOR=1 draws it anyway); "
                          "`kdtui plot` makes a figure of it.")
    timings = ", ".join(f"{k[:-2]} {v:.1f} s" for k, v in result.timings.items())
    console.print(Text(f"saved in {run.eval_dir} ({timings})", style="dim"))
    for note in result.notes:
        console.print(Text(f"note: {note}", style="yellow"))


def plot(
    run_refs: List[str] = typer.Argument(..., metavar="RUN...", help="Run ids, names or folders."),
    what: str = typer.Option("curves", "--what", help="curves (several runs overlaid), reliability "
                             "(a panel per run; student and teacher for one run), tsne or maps "
                             "(one run)."),
    out: Path = typer.Option(..., "--out", help="Output file: .pdf, .png or .svg."),
    checkpoint: str = Checkpoint,
    images: int = typer.Option(4, "--images", min=1, max=64, help="maps: how many of the images."),
    runs_dir: Optional[Path] = RunsDir,
) -> None:
    """A figure for a paper (matplotlib, vector by default, colour-blind-safe colours). The
    reliability, t-SNE and maps figures use the results cached in the run's eval/ by
    `kdtui eval`, computing them first (with its defaults) when they are missing or older
    than the checkpoint."""
    from kdtui.cli_common import user_errors
    from kdtui.store import resolve_run, runs_root

    with user_errors():
        if what not in KINDS:
            raise KdtuiError(f"--what: got {what!r}, expected one of {', '.join(KINDS)}.")
        if out.suffix.lower() not in (".pdf", ".png", ".svg"):
            raise KdtuiError(f"--out: {out.name} should end in .pdf, .png or .svg.")
        root = runs_root(runs_dir)
        runs = [resolve_run(root, ref) for ref in run_refs]
        if what in ("tsne", "maps") and len(runs) != 1:
            raise KdtuiError(f"--what {what} draws one run; got {len(runs)}.")
        from kdtui.analysis import figures

        fig = {"curves": _curves, "reliability": _reliability, "tsne": _tsne,
               "maps": _maps}[what](runs, checkpoint, images)
        path = figures.save_figure(fig, out.expanduser().absolute())
    print(f"wrote {path}", file=sys.stderr)


def _names(runs) -> list[str]:  # noqa: ANN001
    """Run names for legends: the name part of each id, the full id where names repeat."""
    names = [run.id.split("-", 2)[2] for run in runs]
    return [name if names.count(name) == 1 else run.id for name, run in zip(names, runs)]


def _curves(runs, checkpoint: str, images: int):  # noqa: ANN001, ANN202
    from kdtui.analysis.figures import curves_figure

    series = [(name, run.epochs()) for name, run in zip(_names(runs), runs)]
    empty = [name for name, epochs in series if not epochs]
    if len(empty) == len(series):
        raise KdtuiError("None of these runs has finished an epoch yet: no curves to draw.")
    return curves_figure([(name, epochs) for name, epochs in series if epochs])


def _compute(run, checkpoint: str, **options):  # noqa: ANN001, ANN202
    from kdtui.analysis.pipeline import Options, analyse

    parts = ["eval"] + [k for k in ("tsne", "maps") if options.get(k)]
    print(f"computing {' + '.join(parts)} of {run.id} (cached in its eval/)…", file=sys.stderr)
    return analyse(run, Options(checkpoint=checkpoint, **options), progress=_progress_printer())


def _reliability(runs, checkpoint: str, images: int):  # noqa: ANN001, ANN202
    from kdtui.analysis.figures import reliability_figure
    from kdtui.analysis.results import EVAL_JSON, fresh, read_json

    panels = []
    for name, run in zip(_names(runs), runs):
        report = read_json(run, EVAL_JSON)
        if not fresh(report, run, checkpoint):
            report = _compute(run, checkpoint).report
        panels.append((f"{name} ({report.get('student_arch', 'student')})", report))
        if len(runs) == 1 and report.get("teacher"):
            panels.append((f"teacher ({report['teacher'].get('arch', '')})", report["teacher"]))
    return reliability_figure(panels)


def _tsne(runs, checkpoint: str, images: int):  # noqa: ANN001, ANN202
    from kdtui.analysis.figures import tsne_figure
    from kdtui.analysis.results import fresh, read_tsne

    run = runs[0]
    cached = read_tsne(run)
    if cached is None or not fresh(cached[1], run, checkpoint):
        result = _compute(run, checkpoint, tsne=True)
        cached = (result.embeddings, result.tsne_meta)
    embeddings, meta = cached
    archs = {"student": meta.get("student_arch", ""), "teacher": meta.get("teacher_arch", "")}
    return tsne_figure(sorted(embeddings, key=lambda e: e.model != "teacher"), meta["classes"], archs)


def _maps(runs, checkpoint: str, images: int):  # noqa: ANN001, ANN202
    from kdtui.analysis.figures import maps_figure
    from kdtui.analysis.results import fresh, read_maps

    run = runs[0]
    cached = read_maps(run)
    if cached is None or not fresh(cached[1], run, checkpoint) or len(cached[0].labels) < images:
        maps = _compute(run, checkpoint, maps=True, images=images).maps
    else:
        maps = cached[0]
    return maps_figure(maps, list(range(min(images, len(maps.labels)))))


def register(app: typer.Typer) -> None:
    """Add ``eval`` and ``plot`` to the ``kdtui`` command line."""
    app.command("eval")(evaluate)
    app.command("plot")(plot)
