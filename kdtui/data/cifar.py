"""CIFAR-10 and CIFAR-100 through torchvision, held in memory as uint8, augmented per batch.

torchvision's CIFAR classes already load the whole set into one array, so the batches
come from :class:`InMemoryLoader` (crop 32 with 4-pixel black padding + flip, the standard recipe).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path
import torch

from kdtui.data.base import DataBundle
from kdtui.data.info import DataOptions, DatasetInfo, crop_padding, data_root
from kdtui.data.memory import InMemoryLoader, stratified_indices
from kdtui.errors import DataError

DOWNLOAD_TIMEOUT_S = 30


@dataclass(frozen=True)
class CifarSpec:
    name: str
    torchvision_class: str
    folder: str
    first_file: str
    url: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


CIFAR10 = CifarSpec("cifar10", "CIFAR10", "cifar-10-batches-py", "data_batch_1",
                    "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
                    (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
CIFAR100 = CifarSpec("cifar100", "CIFAR100", "cifar-100-python", "train",
                     "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
                     (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762))


def _missing_message(spec: CifarSpec, root: Path, reason: str) -> str:
    return (
        f"{spec.name.upper().replace('CIFAR', 'CIFAR-')} was not found in {root / spec.folder} and "
        f"{reason}. Either allow the download (data.download: true) on a machine with internet, "
        f"or fetch {spec.url} yourself and extract it into {root} (so that "
        f"{root}/{spec.folder}/{spec.first_file} exists), or point data.root at a folder that "
        f"has it, e.g. --set data.root=/path/to/datasets."
    )


def load_cifar_arrays(spec: CifarSpec, root: Path, download: bool) -> tuple:
    import torchvision.datasets

    dataset_class = getattr(torchvision.datasets, spec.torchvision_class)
    present = (root / spec.folder / spec.first_file).exists()
    if not present and not download:
        raise DataError(_missing_message(spec, root, "data.download is false"))
    if not present:
        previous = socket.getdefaulttimeout()
        socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)  # an offline machine must fail, not hang
        try:
            root.mkdir(parents=True, exist_ok=True)
            dataset_class(str(root), train=True, download=True)
        except Exception as exc:  # network errors come in many types (URLError, OSError, ...)
            raise DataError(_missing_message(spec, root, f"downloading it failed ({exc})")) from None
        finally:
            socket.setdefaulttimeout(previous)
    try:
        train = dataset_class(str(root), train=True, download=False)
        test = dataset_class(str(root), train=False, download=False)
    except Exception as exc:
        raise DataError(_missing_message(spec, root, f"the files there could not be read ({exc})")) from None
    as_tensor = lambda a: torch.from_numpy(a).permute(0, 3, 1, 2).contiguous()  # noqa: E731
    return (as_tensor(train.data), torch.tensor(train.targets), as_tensor(test.data),
            torch.tensor(test.targets), list(train.classes))


def build_cifar(cfg: DataOptions, seed: int, spec: CifarSpec, info: DatasetInfo) -> DataBundle:
    train_x, train_y, test_x, test_y, classes = load_cifar_arrays(spec, data_root(cfg), cfg.download)
    keep = stratified_indices(train_y, cfg.train_subset, cfg.seed)
    train_x, train_y = train_x[keep], train_y[keep]
    keep = stratified_indices(test_y, cfg.test_subset, cfg.seed + 1)
    test_x, test_y = test_x[keep], test_y[keep]
    mean, std = torch.tensor(cfg.mean or spec.mean), torch.tensor(cfg.std or spec.std)
    train = InMemoryLoader(train_x, train_y, mean, std, augment=cfg.augment, seed=seed,
                           padding=crop_padding(cfg, info) or 0)
    test = InMemoryLoader(test_x, test_y, mean, std, augment=False, seed=seed)
    return DataBundle(
        name=spec.name, num_classes=len(classes), image_size=train_x.shape[-1], train_size=len(train_y),
        test_size=len(test_y), train_batches=train.train_batches,
        test_batches=test.test_batches, train_labels=train.labels, class_names=classes,
    )
