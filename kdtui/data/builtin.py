"""The built-in ``shapes`` dataset as a :class:`DataBundle` (generated, nothing to download)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from kdtui.data.base import DataBundle
from kdtui.data.memory import InMemoryLoader

if TYPE_CHECKING:
    from kdtui.config import DataConfig


def build_shapes(cfg: "DataConfig", seed: int = 0) -> DataBundle:
    from kdtui.data.shapes import CLASS_NAMES, generate_shapes

    train_x, train_y = generate_shapes(cfg.train_subset or cfg.train_size, seed=cfg.seed, split="train")
    test_x, test_y = generate_shapes(cfg.test_subset or cfg.test_size, seed=cfg.seed, split="test")
    # Statistics of the training split, so normalisation needs no hard-coded numbers.
    pixels = train_x.float().div(255)
    mean, std = pixels.mean(dim=(0, 2, 3)), pixels.std(dim=(0, 2, 3))
    train = InMemoryLoader(train_x, train_y, mean, std, augment=cfg.augment, seed=seed)
    test = InMemoryLoader(test_x, test_y, mean, std, augment=False, seed=seed)
    return DataBundle(
        name="shapes", num_classes=len(CLASS_NAMES), image_size=32,
        train_size=len(train_y), test_size=len(test_y),
        train_batches=train.train_batches, test_batches=test.test_batches,
        class_names=list(CLASS_NAMES),
    )
