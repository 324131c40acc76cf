"""The data path as one replaceable piece.

A dataset builder (registered in :data:`kdtui.data.DATASETS`) turns the ``data`` config
section into a :class:`DataBundle`: the number of classes, the input size, and two
methods that yield ``(images, labels)`` batches already on the requested device —
training batches augmented and shuffled, evaluation batches in order. The engine only
iterates them, so an in-memory on-device loader and a folder loader with worker
processes are interchangeable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

from torch import Tensor

Batches = Iterable[tuple[Tensor, ...]]


@dataclass
class DataBundle:
    name: str
    num_classes: int
    image_size: int
    train_size: int
    test_size: int
    # (batch_size, epoch, device) -> batches; epoch seeds the shuffle so resumed runs match.
    # With with_indices=True each training batch is (images, labels, indices): the samples'
    # positions in the training set (0 … train_size − 1), for methods with a per-sample
    # memory (CRD). Both methods take shard=Shard(rank, world) (kdtui.data.shard; the
    # trainer passes Shard() in one process): batch_size stays the global batch, each
    # process gets its share.
    train_batches: Callable[..., Batches]
    test_batches: Callable[..., Batches]  # (batch_size, device[, shard])
    class_names: list[str]
    # The training labels in index order (what `indices` point into); None if unknown.
    train_labels: Tensor | None = None
    # (log, stop_event) -> False if stopped: one-time work before the first batch (decoding
    # an image folder into the cache), reporting progress through ``log``. The trainer calls
    # it once its sinks listen; the batch methods do it themselves, silently, if not.
    prepare: Callable[..., bool] = lambda log=None, stop=None: True
