"""Analysis of a trained run: metrics with known answers, V-measure against scikit-learn,
t-SNE determinism, the AMD loss's own attention maps, half-block rendering, and `kdtui eval`
/ `kdtui plot` on a tiny distilled run trained here on the built-in shapes data."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

from kdtui.analysis.evaluate import (agreement, calibration, classification_report, confusion_matrix,
                                     nll, per_class_accuracy, topk_accuracy)
from kdtui.analysis.features import stratified_indices, tsne_2d, v_measure
from kdtui.analysis.maps import attention_maps, positive_negative
from kdtui.analysis.render import VIRIDIS, map_cells
from kdtui.cli import app
from conftest import TINY_DATA, TINY_TRAIN

runner = CliRunner()


def test_ece_and_nll_of_hand_made_logits():
    third = math.log(3.0)   # softmax([ln 3, 0]) = (0.75, 0.25)
    ninth = math.log(9.0)   # softmax([ln 9, 0]) = (0.9, 0.1)
    logits = torch.tensor([[third, 0.0]] * 4 + [[ninth, 0.0]] * 2, dtype=torch.float64)
    labels = torch.tensor([0, 0, 0, 1, 1, 1])
    calib = calibration(logits, labels, bins=15)
    # Bin (0.733, 0.8]: 4 samples, confidence 0.75, accuracy 3/4: no gap. Bin (0.867, 0.933]:
    # 2 samples, confidence 0.9, both wrong: gap 0.9 on 2 of 6 samples.
    assert calib.ece == pytest.approx(0.9 * 2 / 6, abs=1e-12)
    full = [b for b in calib.bins if b.count]
    assert [(b.count, b.confidence, b.accuracy) for b in full] == [
        (4, pytest.approx(0.75), 0.75), (2, pytest.approx(0.9), 0.0)]
    assert len(calib.bins) == 15 and calib.bins[0].lower == 0 and calib.bins[-1].upper == 1
    expected = (3 * -math.log(0.75) - math.log(0.25) - 2 * math.log(0.1)) / 6
    assert nll(logits, labels) == pytest.approx(expected, abs=1e-12)
    # A model that is right exactly as often as it is confident is calibrated.
    assert calibration(logits[:4], labels[:4]).ece == pytest.approx(0, abs=1e-12)


def test_topk_confusion_per_class_and_agreement_on_a_tiny_set():
    logits = torch.tensor([[5., 4, 3, 2, 1, 0], [0, 5, 4, 3, 2, 1], [5, 1, 0, 2, 3, 4],
                           [0, 1, 2, 3, 4, 5]])
    labels = torch.tensor([0, 2, 1, 0])
    acc = topk_accuracy(logits, labels, (1, 2, 5))
    assert acc == {1: 25.0, 2: 50.0, 5: 75.0}
    confusion = confusion_matrix(logits.argmax(1), labels, 6)
    assert confusion[0].tolist() == [1, 0, 0, 0, 0, 1] and confusion[2, 1] == 1 and confusion[1, 0] == 1
    assert confusion.sum() == 4
    assert per_class_accuracy(confusion) == [50.0, 0.0, 0.0, None, None, None]
    assert agreement(torch.tensor([0, 1, 2, 3]), torch.tensor([0, 1, 0, 0])) == 50.0
    report = classification_report(logits, labels, list("abcdef"))
    assert report["top1"] == 25.0 and report["top5"] == 75.0 and report["n"] == 4
    assert report["per_class_acc"]["a"] == 50.0 and report["per_class_acc"]["d"] is None
    json.dumps(report)  # plain Python values only


def test_v_measure_equals_scikit_learn():
    from sklearn.metrics import v_measure_score

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 5, 300)
    clusters = np.where(rng.random(300) < 0.7, labels, rng.integers(0, 7, 300))
    assert v_measure(labels, clusters) == pytest.approx(v_measure_score(labels, clusters), abs=1e-12)
    assert v_measure([0, 0, 1, 1], [5, 5, 2, 2]) == pytest.approx(1.0)
    assert v_measure([0, 0, 1, 1], [0, 0, 0, 0]) == pytest.approx(v_measure_score([0, 0, 1, 1], [0, 0, 0, 0]))


def test_stratified_subset_and_seeded_tsne():
    labels = np.array([0] * 50 + [1] * 30 + [2] * 5)
    keep = stratified_indices(labels, 30, seed=1)
    assert len(keep) == 30 and np.bincount(labels[keep]).tolist() == [13, 12, 5]
    assert keep == stratified_indices(labels, 30, seed=1) != stratified_indices(labels, 30, seed=2)
    features = np.random.default_rng(0).normal(size=(40, 6)).astype(np.float32)
    first, again = tsne_2d(features, seed=3), tsne_2d(features, seed=3)
    assert first.shape == (40, 2) and first.dtype == np.float32
    np.testing.assert_array_equal(first, again)


def test_positive_and_negative_maps_are_the_amd_loss_maps():
    import torch.nn.functional as F

    from kdtui.losses.amd import _angular_maps, _positive_map, amd_terms

    torch.manual_seed(0)
    student = [torch.randn(2, 4, 16, 16), torch.randn(2, 8, 8, 8)]
    teacher = [torch.randn(2, 6, 8, 8), torch.randn(2, 12, 8, 8)]   # stage 1 pooled 16 → 8
    stages = attention_maps(student, teacher)
    assert [s.size for s in stages] == [(8, 8), (8, 8)]
    pooled = F.adaptive_avg_pool2d(student[0], (8, 8))
    torch.testing.assert_close(stages[0].student_positive, _positive_map(pooled)[:, 0])
    torch.testing.assert_close(stages[1].teacher_positive, _positive_map(teacher[1])[:, 0])
    qp, qn = positive_negative(teacher[0])
    torch.testing.assert_close(qn.flatten(1) * 64.0, _angular_maps(qp[:, None], 1.35, 64.0)[2])  # G, zp, zn
    # The loss's P and N terms, recomputed from these maps, are the loss's own numbers.
    n = lambda x: F.normalize(x.flatten(1), dim=1, eps=1e-12)  # noqa: E731
    terms = amd_terms(student, teacher, margin=1.35, scale=64.0)
    zp = lambda q: 64.0 * torch.cos(1.35 * torch.acos(q.clamp(-1 + 1e-7, 1 - 1e-7)))  # noqa: E731
    p = sum(F.mse_loss(n(zp(s.student_positive)), n(zp(s.teacher_positive))) for s in stages) / 2
    neg = sum(F.mse_loss(n(64 * s.student_negative), n(64 * s.teacher_negative)) for s in stages) / 2
    torch.testing.assert_close(p, terms["P"])
    torch.testing.assert_close(neg, terms["N"])


def test_a_2x2_map_renders_to_known_cell_colours():
    lines = map_cells(np.array([[0.0, 1.0], [1.0, 0.0]]))
    assert len(lines) == 1 and lines[0].plain == "▀▀"
    low, high = tuple(int(v) for v in VIRIDIS[0]), tuple(int(v) for v in VIRIDIS[-1])
    cells = [(span.style.color.triplet, span.style.bgcolor.triplet) for span in lines[0].spans]
    assert cells == [(low, high), (high, low)]   # top pixel = foreground, bottom = background
    middle = map_cells(np.array([[0.0], [0.5], [1.0]]), low=0.0, high=1.0)
    assert len(middle) == 2 and tuple(middle[0].spans[0].style.bgcolor.triplet) == tuple(int(v) for v in VIRIDIS[4])
    assert middle[1].spans[0].style.bgcolor is None   # an odd row: no bottom pixel


def test_help_and_training_modules_do_not_import_the_analysis_libraries():
    code = ("import sys\nfrom kdtui.cli import app\nimport kdtui.engine.launch, kdtui.engine.trainer\n"
            "try:\n    app(['--help'])\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('sklearn', 'matplotlib', 'pytorch_grad_cam', 'cv2') if m in sys.modules]\n"
            "assert not heavy, heavy\n")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                   env={**os.environ, "COLUMNS": "100"})


@pytest.fixture(scope="module")
def distilled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny teacher and a KD + AMD(g+l) student distilled from it; returns the runs folder."""
    folder = tmp_path_factory.mktemp("analysis")
    presets = folder / "presets"
    presets.mkdir()
    train = {**TINY_TRAIN, "epochs": 1}
    teacher = {"description": "t", "data": TINY_DATA, "student": {"arch": "wrn_10_1"},
               "loss": {"ce": {"weight": 1.0}}, "train": train}
    student = {"description": "s", "data": TINY_DATA, "student": {"arch": "wrn_10_1"},
               "teacher": {"checkpoint": "auto", "preset": "tiny_teacher"},
               "loss": {"ce": {"weight": 0.1}, "kd": {"weight": 0.9}, "amd": {"weight": 5000, "local": True}},
               "train": train}
    (presets / "tiny_teacher.yaml").write_text(yaml.safe_dump(teacher))
    (presets / "tiny_student.yaml").write_text(yaml.safe_dump(student))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KDTUI_PRESETS_DIR", str(presets))
        patch.setenv("KDTUI_DATA_DIR", str(folder / "data"))
        result = runner.invoke(app, ["run", "tiny_student", "--headless", "--runs-dir", str(folder / "runs")])
    assert result.exit_code == 0, result.output
    return folder / "runs"


def test_eval_json_on_a_distilled_run(distilled: Path):
    from kdtui.store import resolve_run

    result = runner.invoke(app, ["eval", "tiny_student", "--runs-dir", str(distilled), "--json",
                                 "--save-logits", "--tsne", "--n", "40", "--maps", "--images", "2",
                                 "--device", "cpu"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    for key in ("top1", "top5", "nll", "ece", "per_class_acc", "confusion", "n", "teacher_agreement"):
        assert key in report
    assert report["n"] == TINY_DATA["test_size"] and report["checkpoint"] == "best"
    assert report["teacher"]["arch"] == "wrn_10_1" and 0 <= report["teacher"]["top1"] <= 100
    assert set(report["tsne"]) == {"student", "teacher"}
    assert 0 <= report["tsne"]["student"]["v_tsne"] <= 1
    run = resolve_run(distilled, "tiny_student")
    assert json.loads((run.eval_dir / "eval.json").read_text()) == {k: v for k, v in report.items() if k != "tsne"}
    saved = torch.load(run.eval_dir / "logits.pt", weights_only=True)
    assert saved["logits"].shape == (TINY_DATA["test_size"], 10) and saved["logits"].dtype == torch.float32
    top1 = 100.0 * (saved["logits"].argmax(1) == saved["labels"]).float().mean().item()
    assert top1 == pytest.approx(report["top1"])
    rows = (run.eval_dir / "tsne.csv").read_text().splitlines()
    assert rows[0] == "x,y,label,pred,model,index" and len(rows) == 1 + 2 * 40
    assert len(list((run.eval_dir / "maps").glob("image-*.png"))) == 2
    maps = torch.load(run.eval_dir / "maps" / "maps.pt", weights_only=True)
    assert maps["images"].shape == (2, 3, 32, 32) and len(maps["models"]["teacher"]["positive"]) == 3


def test_eval_in_the_terminal_and_plots_from_the_cache(distilled: Path, tmp_path: Path):
    result = runner.invoke(app, ["eval", "tiny_student", "--runs-dir", str(distilled), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "top-1" in result.output and "teacher wrn_10_1" in result.output and "reliability" in result.output
    for what, suffix in (("curves", "pdf"), ("reliability", "svg"), ("tsne", "png"), ("maps", "pdf")):
        out = tmp_path / f"{what}.{suffix}"
        result = runner.invoke(app, ["plot", "tiny_student", "tiny_teacher", "--runs-dir", str(distilled),
                                     "--what", what, "--out", str(out)] if what == "curves" else
                               ["plot", "tiny_student", "--runs-dir", str(distilled), "--what", what,
                                "--out", str(out), "--images", "2"])
        assert result.exit_code == 0, result.output
        head = out.read_bytes()[:8]
        assert head.startswith({"pdf": b"%PDF", "png": b"\x89PNG", "svg": b"<?xml"}[suffix]), what
    result = runner.invoke(app, ["plot", "tiny_student", "--runs-dir", str(distilled), "--what", "maps",
                                 "--out", str(tmp_path / "x.jpg")])
    assert result.exit_code == 2 and ".pdf, .png or .svg" in result.output


def test_the_analysis_screen_opens_from_the_runs_viewer_shows_the_cache_and_cancels(distilled: Path):
    import asyncio
    import time

    from textual.widgets import Static

    from kdtui.tui.app import KdtuiApp
    from kdtui.tui.screens.analysis import AnalysisScreen

    async def until(pilot, condition, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert time.monotonic() < deadline, "timed out waiting for the app"
            await pilot.pause(0.05)

    def text(screen, selector: str) -> str:
        from rich.console import Console

        console = Console(width=200, record=True, file=open(os.devnull, "w"))
        console.print(screen.query_one(selector, Static).content)
        return console.export_text()

    async def main() -> None:
        app = KdtuiApp(distilled, start="runs")
        messages: list[str] = []
        show = app.notify
        app.notify = lambda message, *args, **kwargs: (messages.append(message), show(message, *args, **kwargs))
        async with app.run_test(size=(140, 50)) as pilot:
            await until(pilot, lambda: app.screen.table.highlighted() is not None)
            for _ in range(3):  # teacher and student may share a start second: find the student
                if app.screen.table.highlighted().name == "tiny_student":
                    break
                await pilot.press("down")
            await pilot.press("a")
            screen = app.screen
            assert isinstance(screen, AnalysisScreen) and screen.run.id.endswith("tiny_student")
            await until(pilot, lambda: screen.shown.report is not None and screen.computing is None)
            assert "top-1" in text(screen, "#analysis-numbers") and "teacher wrn_10_1" in text(screen, "#analysis-numbers")
            assert "reliability" in text(screen, "#analysis-reliability")
            screen.action_compute("tsne")                # and cancelled before its first test batch
            screen.action_cancel()
            await until(pilot, lambda: screen.computing is None)
            assert "cancelled" in text(screen, "#analysis-status"), messages
            await pilot.press("t")
            await until(pilot, lambda: screen.computing is None)
            assert "V " in text(screen, "#analysis-tsne") and "saved in" in text(screen, "#analysis-status")
            await pilot.press("m")
            await until(pilot, lambda: screen.computing is None)
            assert "test image #" in text(screen, "#analysis-maps"), messages
            await pilot.press("escape")
            assert not isinstance(app.screen, AnalysisScreen)

    asyncio.run(main())
