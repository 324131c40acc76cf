"""Mixup and CutMix of the student's training batches, on the device, a whole batch at once.

The teacher sees the same mixed images as the student (distillation then transfers the
teacher's view of the mixed image); cross-entropy is taken against the mixed targets,
``λ · CE(y) + (1 − λ) · CE(y[perm])``. One λ per batch, drawn from Beta(α, α), as in the
papers (Zhang et al. 2018; Yun et al. 2019) and timm. With both enabled, each batch uses one
of the two at random, with equal chance. Every draw comes from a generator seeded by the
run's seed and the global step, so a resumed run mixes its batches exactly as an
uninterrupted one.

Usage::

    mixed = mix_batch(images, labels, mixup_alpha=0.2, cutmix_alpha=1.0, seed=0, step=17)
    if mixed is not None:
        images, other_labels, lam = mixed
"""

from __future__ import annotations

import math
import random

import torch
from torch import Tensor


def cutmix_box(height: int, width: int, lam: float, rng: random.Random) -> tuple[int, int, int, int]:
    """A box (top, bottom, left, right) of area ≈ (1 − λ)·H·W, centred uniformly and clipped
    to the image (as the CutMix paper's code)."""
    cut = math.sqrt(1.0 - lam)
    cut_h, cut_w = int(height * cut), int(width * cut)
    cy, cx = rng.randrange(height), rng.randrange(width)
    top, bottom = max(cy - cut_h // 2, 0), min(cy + cut_h // 2, height)
    left, right = max(cx - cut_w // 2, 0), min(cx + cut_w // 2, width)
    return top, bottom, left, right


def mix_batch(images: Tensor, labels: Tensor, *, mixup_alpha: float, cutmix_alpha: float,
              seed: int, step: int) -> tuple[Tensor, Tensor, float] | None:
    """(mixed images, the partner labels, λ = weight of ``labels``), or None when both alphas
    are 0. ``images`` is not modified."""
    if mixup_alpha <= 0 and cutmix_alpha <= 0:
        return None
    rng = random.Random(seed * 1_000_003 + step)
    use_cutmix = cutmix_alpha > 0 and (mixup_alpha <= 0 or rng.random() < 0.5)
    alpha = cutmix_alpha if use_cutmix else mixup_alpha
    lam = rng.betavariate(alpha, alpha)
    generator = torch.Generator().manual_seed(rng.getrandbits(63))
    # No wait for the device on the copy (see data.memory.random_crop_flip).
    perm = torch.randperm(len(labels), generator=generator).to(images.device, non_blocking=True)
    partner = images[perm]
    if use_cutmix:
        height, width = images.shape[-2:]
        top, bottom, left, right = cutmix_box(height, width, lam, rng)
        mixed = images.clone()
        mixed[..., top:bottom, left:right] = partner[..., top:bottom, left:right]
        # The box was clipped at the border: λ is the area actually kept.
        lam = 1.0 - (bottom - top) * (right - left) / (height * width)
    else:
        mixed = images * lam + partner * (1.0 - lam)
    return mixed, labels[perm], lam
