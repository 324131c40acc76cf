"""Datasets registered by name in :data:`DATASETS`; each builds a :class:`DataBundle`.

Usage::

    from kdtui.data import build_data
    bundle = build_data(cfg.data, seed=cfg.train.seed)
    for images, labels in bundle.train_batches(128, 1, device): ...

Builders import torch lazily, so validating a dataset name stays cheap.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from kdtui.registry import Registry

if TYPE_CHECKING:
    from kdtui.config import DataConfig
    from kdtui.data.base import DataBundle

DATASETS = Registry("dataset")


def default_data_root() -> Path:
    """$KDTUI_DATA_DIR, else ~/.cache/kdtui/data — never the current directory."""
    env = os.environ.get("KDTUI_DATA_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "kdtui" / "data"


def data_root(cfg: "DataConfig") -> Path:
    return Path(cfg.root).expanduser() if cfg.root else default_data_root()


def build_data(cfg: "DataConfig", seed: int = 0) -> "DataBundle":
    """``seed`` (the run's) drives shuffling and augmentation, not the data itself."""
    return DATASETS.get(cfg.dataset)(cfg, seed)


@DATASETS.register("shapes")
def _shapes(cfg: "DataConfig", seed: int) -> "DataBundle":
    from kdtui.data.builtin import build_shapes

    return build_shapes(cfg, seed)


@DATASETS.register("cifar10")
def _cifar10(cfg: "DataConfig", seed: int) -> "DataBundle":
    from kdtui.data.cifar import CIFAR10, build_cifar

    return build_cifar(cfg, seed, CIFAR10)


@DATASETS.register("cifar100")
def _cifar100(cfg: "DataConfig", seed: int) -> "DataBundle":
    from kdtui.data.cifar import CIFAR100, build_cifar

    return build_cifar(cfg, seed, CIFAR100)


def _folder_dataset(layout_name: str):
    def build(cfg: "DataConfig", seed: int) -> "DataBundle":
        from kdtui.data.folders import LAYOUTS, build_folder_dataset

        return build_folder_dataset(cfg, seed, LAYOUTS[layout_name])

    return build


for _name in ("cinic10", "tiny_imagenet", "imagenet", "imagefolder"):
    DATASETS.register(_name)(_folder_dataset(_name))
