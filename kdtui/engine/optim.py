"""Optimisers and learning-rate schedules, registered by name.

The schedule is a pure function of the epoch (``lr_at``), so a resumed run needs no
scheduler state to get the same learning rates.

Usage::

    optimizer = build_optimizer(cfg.train, params)
    lr = lr_at(cfg.train, epoch=3)         # LR used during epoch 3 (1-based)
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Iterable, Protocol

from kdtui.registry import Registry

if TYPE_CHECKING:
    import torch


class TrainOptions(Protocol):
    """What the optimisers and schedules read of the ``train`` config section
    (:class:`kdtui.config.TrainConfig`, which validates its names against these registries)."""

    optimizer: str
    schedule: str
    epochs: int
    lr: float
    momentum: float
    nesterov: bool
    weight_decay: float
    milestones: list[int]
    lr_decay: float


OPTIMIZERS = Registry("optimizer")
SCHEDULES = Registry("schedule")


@OPTIMIZERS.register("sgd")
def sgd(cfg: TrainOptions, params: Iterable["torch.nn.Parameter"]) -> "torch.optim.Optimizer":
    import torch

    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0,
                           weight_decay=cfg.weight_decay)


@OPTIMIZERS.register("adam")
def adam(cfg: TrainOptions, params: Iterable["torch.nn.Parameter"]) -> "torch.optim.Optimizer":
    import torch

    # Coupled L2 as in the KD literature's Adam runs (not AdamW's decoupled decay).
    return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


@SCHEDULES.register("multistep")
def multistep(cfg: TrainOptions, epoch: int) -> float:
    passed = sum(1 for m in cfg.milestones if epoch > m)
    return cfg.lr * cfg.lr_decay**passed


@SCHEDULES.register("cosine")
def cosine(cfg: TrainOptions, epoch: int) -> float:
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * (epoch - 1) / cfg.epochs))


@SCHEDULES.register("constant")
def constant(cfg: TrainOptions, epoch: int) -> float:
    return cfg.lr


def build_optimizer(cfg: TrainOptions, params: Iterable["torch.nn.Parameter"]) -> "torch.optim.Optimizer":
    return OPTIMIZERS.get(cfg.optimizer)(cfg, params)


def lr_at(cfg: TrainOptions, epoch: int) -> float:
    return SCHEDULES.get(cfg.schedule)(cfg, epoch)
