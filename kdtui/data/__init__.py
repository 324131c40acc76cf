"""Datasets registered by name in :data:`DATASETS`; each builds a :class:`DataBundle`.

Every dataset is registered with its :class:`DatasetInfo` (class count, image size, preset
group, crop padding, a one-line description), which :func:`dataset_info` returns without
loading anything.

Usage::

    from kdtui.data import build_data, dataset_info
    dataset_info("cifar100").num_classes      # 100, before any file is read
    bundle = build_data(cfg.data, seed=cfg.train.seed)
    for images, labels in bundle.train_batches(128, 1, device): ...

Builders import torch lazily, so importing this package (validating a dataset name,
listing presets, the app's forms) stays cheap. Nothing here imports the config module:
the builders take the ``data`` section as it is (:data:`DataOptions`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kdtui.data.info import DataOptions, DatasetInfo, data_root, default_data_root
from kdtui.registry import Registry

if TYPE_CHECKING:
    from kdtui.data.base import DataBundle

__all__ = ["DATASETS", "DataOptions", "DatasetInfo", "build_data", "data_root", "dataset_info",
           "dataset_groups", "default_data_root"]

# name -> builder(cfg, seed, info) -> DataBundle, with a DatasetInfo each.
DATASETS = Registry("dataset", info_type=DatasetInfo)


def dataset_info(name: str) -> DatasetInfo:
    """The metadata of a registered dataset (a ConfigError naming the valid ones if unknown)."""
    return DATASETS.info(name)


def dataset_groups() -> list[str]:
    """The datasets' preset groups, each once, in registration order."""
    return list(dict.fromkeys(info.group for info in DATASETS.infos()))


def build_data(cfg: DataOptions, seed: int = 0) -> "DataBundle":
    """``seed`` (the run's) drives shuffling and augmentation, not the data itself."""
    return DATASETS.get(cfg.dataset)(cfg, seed, DATASETS.info(cfg.dataset))


@DATASETS.register("shapes", num_classes=10, image_size=32, group="quickstart", crop_padding=4,
                   description="generated shapes (10 classes, 32×32); nothing to download")
def _shapes(cfg: DataOptions, seed: int, info: DatasetInfo) -> "DataBundle":
    from kdtui.data.builtin import build_shapes

    return build_shapes(cfg, seed, info)


@DATASETS.register("cifar10", num_classes=10, image_size=32, group="cifar10", crop_padding=4,
                   description="CIFAR-10: 50,000 training images, 10 classes, 32×32")
def _cifar10(cfg: DataOptions, seed: int, info: DatasetInfo) -> "DataBundle":
    from kdtui.data.cifar import CIFAR10, build_cifar

    return build_cifar(cfg, seed, CIFAR10, info)


@DATASETS.register("cifar100", num_classes=100, image_size=32, group="cifar100", crop_padding=4,
                   description="CIFAR-100: 50,000 training images, 100 classes, 32×32")
def _cifar100(cfg: DataOptions, seed: int, info: DatasetInfo) -> "DataBundle":
    from kdtui.data.cifar import CIFAR100, build_cifar

    return build_cifar(cfg, seed, CIFAR100, info)


def _folder_dataset(cfg: DataOptions, seed: int, info: DatasetInfo) -> "DataBundle":
    from kdtui.data.folders import LAYOUTS, build_folder_dataset

    return build_folder_dataset(cfg, seed, LAYOUTS[info.name], info)


DATASETS.register("cinic10", num_classes=10, image_size=32, group="cinic10", crop_padding=4,
                  description="CINIC-10: 90,000 training images (CIFAR-10 and downsampled "
                              "ImageNet), 10 classes, 32×32")(_folder_dataset)
# The AMD paper pads Tiny-ImageNet's 64×64 images to 68×68: 2 pixels a side.
DATASETS.register("tiny_imagenet", num_classes=200, image_size=64, group="tiny_imagenet",
                  crop_padding=2,
                  description="Tiny-ImageNet: 100,000 training images, 200 classes, 64×64")(_folder_dataset)
# Random-resized crops of 224, not padded crops: no crop padding to set.
DATASETS.register("imagenet", num_classes=1000, image_size=224, group="imagenet", crop_padding=None,
                  description="ImageNet (ILSVRC-2012): 1.28 million training images, 1000 classes, "
                              "224×224 crops")(_folder_dataset)
DATASETS.register("imagefolder", num_classes=None, image_size=None, group="other", crop_padding=4,
                  description="any tree of class folders, ROOT/train/<class>/*; classes and "
                              "size from the files")(_folder_dataset)
