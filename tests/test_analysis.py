"""Analysis of a trained run: metrics with known answers, V-measure against scikit-learn,
t-SNE determinism, the AMD loss's own attention maps, half-block rendering."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from kdtui.analysis.evaluate import (agreement, calibration, classification_report, confusion_matrix,
                                     nll, per_class_accuracy, topk_accuracy)
from kdtui.analysis.features import stratified_indices, tsne_2d, v_measure
from kdtui.analysis.maps import attention_maps, positive_negative
from kdtui.analysis.render import VIRIDIS, map_cells


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
    torch.testing.assert_close(qn.flatten(1) * 64.0, _angular_maps(qp[:, None], 1.35, 64.0)["N"])
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
