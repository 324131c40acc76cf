"""CRD: contrastive representation distillation (Tian, Krishnan, Isola, ICLR 2020).

As RepDistiller (``crd/criterion.py``, ``crd/memory.py``; HobbitLong/RepDistiller @b84f547),
``mode: exact``: the student's and the teacher's penultimate embeddings are each projected
by a linear layer to ``feat_dim`` and L2-normalised; a memory bank per side holds one
momentum-averaged projection per training image. For every sample, its own slot is the
positive and ``nce_k`` slots of images of *other* classes are the negatives; each side
is scored against the other side's memory, ``exp(v·m / τ) / Z`` (Z fixed from the first
batch: mean score × training-set size), and the NCE loss of Eq. (18) is summed over both
sides. Then the two memories move their positive slots towards the new projections.

Needs the samples' positions in the training set (the data path gives them when a method
sets ``needs_indices``) and the training labels (for the negatives), given in
:meth:`CRDLoss.setup_data`. One deliberate difference: negatives are drawn with
replacement on the training device (RepDistiller draws 16,384 of CIFAR's 45,000 other-class
images without replacement, in the data workers); duplicates change the NCE estimate
negligibly and keep sampling off the host.

Usage::

    method = LOSSES.get("crd")(CRDOptions(weight=0.8))
    method.setup_data(dry_inputs, train_labels)       # once, before the optimiser is built
    terms = method(inputs)                             # {"CRD": tensor}; inputs.indices needed
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

from kdtui.errors import ConfigError
from kdtui.losses.base import LossInputs, LossMethod
from kdtui.losses.registry import LOSSES
from kdtui.schema import option

EPS = 1e-7  # RepDistiller's eps in ContrastLoss


@dataclass
class CRDOptions:
    weight: float = option(0.8, help="weight β of the CRD term (RepDistiller's -b 0.8)", ge=0)
    feat_dim: int = option(128, help="dimension of the projected embeddings", gt=0)
    nce_k: int = option(16384, help="negatives per sample", gt=0)
    nce_t: float = option(0.07, help="temperature τ of the scores", gt=0)
    nce_m: float = option(0.5, help="momentum of the memory-bank update", ge=0, lt=1)


def nce_loss(scores: Tensor, n_data: int) -> Tensor:
    """Eq. (18): scores B×(1+K), the positive first; noise distribution uniform over the set."""
    m = scores.shape[1] - 1
    noise = m / float(n_data)
    log_d1 = torch.log(scores[:, 0] / (scores[:, 0] + noise + EPS))
    log_d0 = torch.log(noise / (scores[:, 1:] + noise + EPS))
    return -(log_d1.sum() + log_d0.sum()) / scores.shape[0]


def slot_dots(v: Tensor, memory: Tensor, slots: Tensor) -> Tensor:
    """v_b · memory[slots_b,k] for every sample b and slot k (B×(1+K)).

    RepDistiller gathers the B×(1+K)×D slot vectors and multiplies them batch by batch;
    that copies 2 GB per step at CIFAR's sizes (K = 16,384) and is memory bound. When the
    memory holds not many more rows than the slots drawn, scoring v against all of it in
    one matrix product and picking the slots is the same numbers, 20-80× faster on a CPU.
    Large sets (ImageNet's 1.28 M rows) keep the gather."""
    if memory.shape[0] <= 8 * slots.shape[1]:
        # A copy: autograd keeps the memory for v's gradient, and the update that follows
        # the scoring writes the memory in place.
        return torch.gather(v @ memory.clone().T, 1, slots)
    return torch.bmm(memory[slots], v.unsqueeze(2)).squeeze(2)


class Embed(nn.Module):
    """Linear projection, then L2 normalisation (RepDistiller's Embed)."""

    def __init__(self, dim_in: int, dim_out: int) -> None:
        super().__init__()
        self.linear = nn.Linear(dim_in, dim_out)

    def forward(self, x: Tensor) -> Tensor:
        x = self.linear(x.flatten(1))
        return x / x.pow(2).sum(1, keepdim=True).sqrt()


def gathered(rows: Tensor) -> Tensor:
    """``rows`` of every process training the run (torchrun), concatenated in rank order;
    ``rows`` itself in a single process. Every process holds an equal share of the batch."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return rows
    parts = [torch.empty_like(rows) for _ in range(torch.distributed.get_world_size())]
    torch.distributed.all_gather(parts, rows.contiguous())
    return torch.cat(parts)


@LOSSES.register("crd")
class CRDLoss(LossMethod):
    Options = CRDOptions
    needs_teacher = True
    needs_indices: ClassVar[bool] = True

    def __init__(self, options: CRDOptions) -> None:
        super().__init__(options)
        self.embed_s: Embed | None = None
        self.embed_t: Embed | None = None

    def setup_data(self, inputs: LossInputs, train_labels: Tensor | None) -> None:
        """Projections sized from the dry run's embeddings; memories and the per-class index
        of negatives from the training labels. Idempotent for the same sizes."""
        if inputs.student_embedding is None or inputs.teacher_embedding is None:
            raise ConfigError("crd needs the penultimate embeddings of student and teacher; "
                              "every built-in network gives them (ModelOutput.embedding).")
        if train_labels is None:
            raise ConfigError("crd needs the training labels (DataBundle.train_labels) of the dataset.")
        device = inputs.student_embedding.device
        s_dim, t_dim = inputs.student_embedding.shape[1], inputs.teacher_embedding.shape[1]
        if self.embed_s is None:
            self.embed_s = Embed(s_dim, self.options.feat_dim).to(device)
            self.embed_t = Embed(t_dim, self.options.feat_dim).to(device)
        labels = train_labels.to(device).long()
        n_data, dim = len(labels), self.options.feat_dim
        # Memories start uniform in ±1/sqrt(dim/3), as RepDistiller's ContrastMemory.
        stdv = 1.0 / math.sqrt(dim / 3)
        for name in ("memory_s", "memory_t"):
            if getattr(self, name, None) is None or getattr(self, name).shape != (n_data, dim):
                self.register_buffer(name, torch.rand(n_data, dim, device=device) * 2 * stdv - stdv)
        # Z of each side, fixed from the first training batch (-1: not yet).
        self.register_buffer("z", torch.full((2,), -1.0, device=device))
        # Training positions sorted by class, with each class's start and size: the k-th
        # image not of class c is order[k] before c's block and order[k + size_c] after it.
        self.register_buffer("order", torch.argsort(labels, stable=True), persistent=False)
        counts = torch.bincount(labels)
        self.register_buffer("class_size", counts, persistent=False)
        self.register_buffer("class_start", torch.cumsum(counts, 0) - counts, persistent=False)
        self.register_buffer("train_labels", labels, persistent=False)

    def sample_negatives(self, indices: Tensor) -> Tensor:
        """B×K training positions of images of other classes than each sample's, uniform."""
        labels = self.train_labels[indices]
        size = self.class_size[labels][:, None]                                        # B×1
        others = len(self.train_labels) - size
        draw = (torch.rand(len(indices), self.options.nce_k, device=indices.device)
                * others).long()                                                       # B×K
        start = self.class_start[labels][:, None]
        return self.order[torch.where(draw < start, draw, draw + size)]

    def scores(self, v_s: Tensor, v_t: Tensor, slots: Tensor) -> tuple[Tensor, Tensor]:
        """exp(v·m/τ) of each side against the other side's memory slots (B×(1+K))."""
        tau = self.options.nce_t
        return (torch.exp(slot_dots(v_s, self.memory_t.detach(), slots) / tau),
                torch.exp(slot_dots(v_t, self.memory_s.detach(), slots) / tau))

    @torch.no_grad()
    def update_memory(self, v_s: Tensor, v_t: Tensor, indices: Tensor) -> None:
        m = self.options.nce_m
        # Under torchrun every process applies the whole global batch's update, so the
        # memories stay identical on all of them (and equal to a single process's).
        v_s, v_t, indices = (gathered(t.detach()) for t in (v_s, v_t, indices))
        for memory, v in ((self.memory_s, v_s), (self.memory_t, v_t)):
            moved = memory[indices] * m + v * (1 - m)
            memory.index_copy_(0, indices, moved / moved.pow(2).sum(1, keepdim=True).sqrt())

    def forward(self, inputs: LossInputs) -> dict[str, Tensor]:
        if self.embed_s is None or self.embed_t is None:
            raise ConfigError("crd: setup_data() was not called; the engine calls it before training.")
        with torch.autocast(device_type=inputs.student_logits.device.type, enabled=False):
            v_s = self.embed_s(inputs.student_embedding.float())
            v_t = self.embed_t(inputs.teacher_embedding.detach().float())
            if inputs.indices is None:  # the engine's dry run: shapes checked, memory untouched
                return {"CRD": (v_s.sum() + v_t.sum()) * 0.0}
            indices = inputs.indices.long()
            slots = torch.cat([indices[:, None], self.sample_negatives(indices)], dim=1)
            return {"CRD": self.contrast(v_s, v_t, indices, slots)}

    def contrast(self, v_s: Tensor, v_t: Tensor, indices: Tensor, slots: Tensor) -> Tensor:
        """Both NCE terms for given slots (positive first), then the memory update."""
        out_s, out_t = self.scores(v_s, v_t, slots)
        n_data = len(self.memory_s)
        if bool((self.z < 0).any()):  # one host sync, on the first batch only
            # Under torchrun the mean over the global batch (equal shares), as in one process.
            self.z.copy_(gathered(torch.stack([out_s.mean(), out_t.mean()]).detach()[None]).mean(0) * n_data)
        loss = nce_loss(out_s / self.z[0], n_data) + nce_loss(out_t / self.z[1], n_data)
        self.update_memory(v_s, v_t, indices)
        return loss

