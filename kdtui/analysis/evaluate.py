"""Numbers of a classifier's test-set logits: top-k accuracy, NLL, calibration (ECE over
equal-width confidence bins, and the bins of its reliability diagram), the confusion matrix,
per-class accuracy, and the agreement of two models' predictions.

Every function takes logits ``[N, C]`` and integer labels ``[N]`` (CPU tensors; logits are
upcast to float64 here so a known answer is met exactly) and returns plain Python numbers,
ready for ``eval/eval.json``. Accuracies are in %, ECE is a fraction in [0, 1], NLL in nats.

Usage::

    report = classification_report(logits, labels, class_names)
    report["top1"], report["ece"], report["reliability"][0]["accuracy"]
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

ECE_BINS = 15


def topk_accuracy(logits: Tensor, labels: Tensor, ks: Sequence[int] = (1, 5)) -> dict[int, float]:
    """% of samples whose label is among the k largest logits (k capped at the class count)."""
    n = max(len(labels), 1)
    top = logits.topk(min(max(ks), logits.shape[1]), dim=1).indices
    hits = top == labels.view(-1, 1)
    return {k: 100.0 * hits[:, :min(k, logits.shape[1])].any(dim=1).sum().item() / n for k in ks}


def nll(logits: Tensor, labels: Tensor) -> float:
    """Mean negative log-likelihood of the labels under softmax(logits), in nats."""
    return F.cross_entropy(logits.double(), labels.long()).item()


@dataclass
class ReliabilityBin:
    lower: float            # the bin holds confidences in (lower, upper]
    upper: float
    count: int
    confidence: float | None   # mean top-1 confidence of the bin's samples (None when empty)
    accuracy: float | None     # their top-1 accuracy, a fraction


@dataclass
class Calibration:
    ece: float                  # Σ_b |acc_b − conf_b| · n_b / N
    bins: list[ReliabilityBin]


def calibration(logits: Tensor, labels: Tensor, bins: int = ECE_BINS) -> Calibration:
    """Expected calibration error over ``bins`` equal-width bins of the top-1 confidence
    (Guo et al. 2017; bin b holds confidences in (b/B, (b+1)/B])."""
    probs = logits.double().softmax(dim=1)
    confidence, predicted = probs.max(dim=1)
    correct = (predicted == labels).double()
    edges = torch.linspace(0.0, 1.0, bins + 1, dtype=torch.float64)
    total = max(len(labels), 1)
    ece, table = 0.0, []
    for lower, upper in zip(edges[:-1].tolist(), edges[1:].tolist()):
        inside = (confidence > lower) & (confidence <= upper)
        count = int(inside.sum())
        if count:
            conf, acc = confidence[inside].mean().item(), correct[inside].mean().item()
            ece += abs(acc - conf) * count / total
            table.append(ReliabilityBin(lower, upper, count, conf, acc))
        else:
            table.append(ReliabilityBin(lower, upper, 0, None, None))
    return Calibration(ece, table)


def confusion_matrix(predicted: Tensor, labels: Tensor, num_classes: int) -> Tensor:
    """``[C, C]`` counts: row = true class, column = predicted class."""
    index = labels.long() * num_classes + predicted.long()
    return torch.bincount(index, minlength=num_classes * num_classes).view(num_classes, num_classes)


def per_class_accuracy(confusion: Tensor) -> list[float | None]:
    """% correct of each true class (None for a class with no test sample)."""
    totals = confusion.sum(dim=1)
    return [100.0 * confusion[c, c].item() / totals[c].item() if totals[c] else None
            for c in range(confusion.shape[0])]


def agreement(predicted_a: Tensor, predicted_b: Tensor) -> float:
    """% of samples on which two models predict the same class."""
    return 100.0 * (predicted_a == predicted_b).sum().item() / max(len(predicted_a), 1)


def classification_report(logits: Tensor, labels: Tensor, class_names: Sequence[str],
                          bins: int = ECE_BINS) -> dict[str, Any]:
    """Everything eval.json holds for one model (see the module docstring for the units)."""
    logits, labels = logits.float().cpu(), labels.long().cpu()
    names = list(class_names) or [str(c) for c in range(logits.shape[1])]
    confusion = confusion_matrix(logits.argmax(dim=1), labels, logits.shape[1])
    top = topk_accuracy(logits, labels, (1, 5))
    calib = calibration(logits, labels, bins)
    return {
        "n": len(labels), "top1": top[1], "top5": top[5], "nll": nll(logits, labels),
        "ece": calib.ece, "ece_bins": bins, "reliability": [asdict(b) for b in calib.bins],
        "per_class_acc": dict(zip(names, per_class_accuracy(confusion))),
        "confusion": confusion.tolist(),
    }
