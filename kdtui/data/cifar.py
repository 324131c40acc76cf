"""CIFAR-10 through torchvision, held in memory as uint8 and augmented per batch.

torchvision's CIFAR10 already loads the whole set into one array, so the batches come
from :class:`InMemoryLoader` (crop 32 with 4-pixel padding + flip, the standard recipe).
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from kdtui.data.base import DataBundle
from kdtui.data.memory import InMemoryLoader
from kdtui.errors import DataError

if TYPE_CHECKING:
    from kdtui.config import DataConfig

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
DOWNLOAD_TIMEOUT_S = 30


def _missing_message(root: Path, reason: str) -> str:
    return (
        f"CIFAR-10 was not found in {root / 'cifar-10-batches-py'} and {reason}. "
        f"Either allow the download (data.download: true) on a machine with internet, or "
        f"fetch {CIFAR10_URL} yourself and extract it into {root} (so that {root}/"
        f"cifar-10-batches-py/data_batch_1 exists), or point data.root at a folder that "
        f"has it, e.g. --set data.root=/path/to/datasets."
    )


def load_cifar10_arrays(root: Path, download: bool) -> tuple[torch.Tensor, ...]:
    from torchvision.datasets import CIFAR10

    present = (root / "cifar-10-batches-py" / "data_batch_1").exists()
    if not present and not download:
        raise DataError(_missing_message(root, "data.download is false"))
    if not present:
        previous = socket.getdefaulttimeout()
        socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)  # an offline machine must fail, not hang
        try:
            root.mkdir(parents=True, exist_ok=True)
            CIFAR10(str(root), train=True, download=True)
        except Exception as exc:  # network errors come in many types (URLError, OSError, ...)
            raise DataError(_missing_message(root, f"downloading it failed ({exc})")) from None
        finally:
            socket.setdefaulttimeout(previous)
    try:
        train = CIFAR10(str(root), train=True, download=False)
        test = CIFAR10(str(root), train=False, download=False)
    except Exception as exc:
        raise DataError(_missing_message(root, f"the files there could not be read ({exc})")) from None
    as_tensor = lambda a: torch.from_numpy(a).permute(0, 3, 1, 2).contiguous()  # noqa: E731
    return (as_tensor(train.data), torch.tensor(train.targets), as_tensor(test.data),
            torch.tensor(test.targets), list(train.classes))


def build_cifar10(cfg: "DataConfig", seed: int = 0) -> DataBundle:
    from kdtui.data import data_root

    train_x, train_y, test_x, test_y, classes = load_cifar10_arrays(data_root(cfg), cfg.download)
    mean, std = torch.tensor(CIFAR10_MEAN), torch.tensor(CIFAR10_STD)
    train = InMemoryLoader(train_x, train_y, mean, std, augment=cfg.augment, seed=seed)
    test = InMemoryLoader(test_x, test_y, mean, std, augment=False, seed=seed)
    return DataBundle(
        name="cifar10", num_classes=10, image_size=32, train_size=len(train_y),
        test_size=len(test_y), train_batches=train.train_batches,
        test_batches=test.test_batches, class_names=classes,
    )
