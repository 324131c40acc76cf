"""The run's objective: Σ weight × method value, keeping every named term for the record.

Usage::

    objective = Objective(cfg.active_losses)
    total, terms = objective(LossInputs(...))     # terms: {"CE": ..., "KD": ..., "A": ...}
    objective.coefficients(epoch)                 # {"CE": 0.1, "KD": 0.9, "A": 1666.7, ...}
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from kdtui.losses import LOSSES
from kdtui.losses.base import LossInputs


class Objective(nn.Module):
    def __init__(self, losses: dict[str, Any]) -> None:
        super().__init__()
        # A ModuleDict so learned loss modules (e.g. FitNet regressors) are trained,
        # moved to the device and saved in checkpoints with everything else.
        self.methods = nn.ModuleDict({name: LOSSES.get(name)(opts) for name, opts in losses.items()})
        self.weights = {name: float(opts.weight) for name, opts in losses.items()}
        self.term_owner: dict[str, str] = {}  # term name → the method reporting it (seen so far)

    def setup(self, student_features: list[Tensor], teacher_features: list[Tensor] | None) -> None:
        """Let methods with learned parts (FitNet's regressor) size them from real features."""
        for method in self.methods.values():
            method.setup(student_features, teacher_features)

    def setup_data(self, inputs: LossInputs, train_labels: Tensor | None) -> None:
        """Let methods size parts from the dry run's outputs or the training set (CRD)."""
        for method in self.methods.values():
            method.setup_data(inputs, train_labels)

    @property
    def needs_indices(self) -> bool:
        """Whether a method needs the batches' training-set positions (LossInputs.indices)."""
        return any(method.needs_indices for method in self.methods.values())

    def forward(self, inputs: LossInputs) -> tuple[Tensor, dict[str, Tensor]]:
        total = inputs.student_logits.new_zeros((), dtype=torch.float32)
        terms: dict[str, Tensor] = {}
        for name, method in self.methods.items():
            method_terms = method(inputs)
            clash = terms.keys() & method_terms.keys()
            if clash:
                raise ValueError(f"loss {name} reports terms {sorted(clash)} that another loss also reports")
            terms.update(method_terms)
            if len(self.term_owner) < len(terms):  # a few dict operations, on the first steps only
                self.term_owner.update(dict.fromkeys(method_terms, name))
            weight = self.weights[name] * method.weight_scale(inputs.epoch)
            total = total + weight * method.combine(method_terms).float()
        return total, terms

    @torch.no_grad()
    def coefficients(self, epoch: int) -> dict[str, float]:
        """Each term's factor in the total during ``epoch``: total = Σ factor × term. A
        method's ``combine`` is linear in its terms (a sum, AMD's mean, DKD's α·TCKD + β·NCKD),
        so each factor is the method's weight (times its warm-up scale) times what ``combine``
        gives a unit term. Terms not yet reported (before the first step) are absent."""
        factors: dict[str, float] = {}
        for name, method in self.methods.items():
            names = [term for term, owner in self.term_owner.items() if owner == name]
            if not names:
                continue
            weight = self.weights[name] * method.weight_scale(epoch)
            zero = {term: torch.zeros(()) for term in names}
            base = float(method.combine(zero))
            for term in names:
                factors[term] = weight * (float(method.combine({**zero, term: torch.ones(())})) - base)
        return factors
