"""Batches from uint8 image tensors held in memory, augmented a whole batch at a time.

Random crop with black padding (torchvision's ``RandomCrop(size, padding)`` followed by
``RandomHorizontalFlip``) is done with tensor indexing on the batch (on the training
device), which on small images is far faster than per-image PIL transforms in worker
processes. Shuffling and augmentation draw from a generator seeded by (seed, epoch), so a
resumed run sees the same batches.
"""

from __future__ import annotations

from typing import Iterator

import torch
from torch import Tensor


def normalise(images_u8: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    return (images_u8.float().div_(255) - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)


def random_crop_flip(images: Tensor, generator: torch.Generator, padding: int = 4) -> Tensor:
    """Pad by ``padding`` (zeros), crop back to the original size at a random offset per
    image (uniform over 0..2·padding in each axis), and flip half of the images horizontally."""
    n, _, h, w = images.shape
    padded = torch.nn.functional.pad(images, (padding,) * 4)
    # Drawn on the host (the seeded CPU generator); copied without waiting for the device,
    # so a GPU step never stalls on them (from pageable memory that copy is still safe).
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator).to(images.device, non_blocking=True)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator).to(images.device, non_blocking=True)
    flip = torch.rand(n, generator=generator).to(images.device, non_blocking=True) < 0.5
    rows = dy[:, None] + torch.arange(h, device=images.device)[None, :]           # n × h
    cols = torch.arange(w, device=images.device)[None, :].expand(n, w)
    cols = torch.where(flip[:, None], cols.flip(1), cols) + dx[:, None]           # n × w
    batch = torch.arange(n, device=images.device)[:, None, None]
    # Advanced indexing yields n × h × w × C; move channels back.
    return padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


class InMemoryLoader:
    """Iterates a uint8 image tensor in batches, normalised, optionally augmented.

    ``padding``: black pixels added on each side for the random crop (0: flips only).
    """

    def __init__(self, images: Tensor, labels: Tensor, mean: Tensor, std: Tensor,
                 augment: bool, seed: int, padding: int = 4) -> None:
        self.images, self.labels = images, labels
        self.mean, self.std = mean, std
        self.augment, self.seed = augment, seed
        self.padding = padding
        self._resident: dict[torch.device, tuple[Tensor, ...]] = {}

    def on(self, device: torch.device) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Images, labels, mean and std on ``device``, copied there once (a CIFAR-sized
        uint8 set is ~150 MB): no host-to-device copy per batch."""
        if device not in self._resident:
            self._resident[device] = tuple(t.to(device) for t in (self.images, self.labels, self.mean, self.std))
        return self._resident[device]  # type: ignore[return-value]

    def train_batches(self, batch_size: int, epoch: int, device: torch.device,
                      with_indices: bool = False) -> Iterator[tuple[Tensor, ...]]:
        images_all, labels_all, mean, std = self.on(device)
        generator = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        order = torch.randperm(len(self.labels), generator=generator).to(device)
        # Drop the last incomplete batch (BatchNorm dislikes a batch of one), unless the
        # whole set is smaller than one batch.
        last_start = max(len(order) - batch_size, 0)
        for start in range(0, last_start + 1, batch_size):
            idx = order[start:start + batch_size]
            images = images_all[idx]
            if self.augment:
                # On the uint8 images, before normalising: the padding is black.
                images = random_crop_flip(images, generator, self.padding)
            images = normalise(images, mean, std).contiguous(memory_format=torch.channels_last)
            yield (images, labels_all[idx], idx) if with_indices else (images, labels_all[idx])

    def test_batches(self, batch_size: int, device: torch.device) -> Iterator[tuple[Tensor, Tensor]]:
        images_all, labels_all, mean, std = self.on(device)
        for start in range(0, len(labels_all), batch_size):
            images = normalise(images_all[start:start + batch_size], mean, std)
            yield images.contiguous(memory_format=torch.channels_last), labels_all[start:start + batch_size]


def stratified_indices(labels: Tensor, count: int | None, seed: int) -> Tensor:
    """Indices of ``count`` samples spread evenly over the classes (seeded), in label order;
    all indices when ``count`` is None or not smaller than the set."""
    if count is None or count >= len(labels):
        return torch.arange(len(labels))
    generator = torch.Generator().manual_seed(seed)
    classes = labels.unique().tolist()
    per_class, extra = divmod(count, len(classes))
    chosen = []
    for rank, label in enumerate(classes):
        members = (labels == label).nonzero().flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        chosen.append(members[:per_class + (1 if rank < extra else 0)].sort().values)
    return torch.cat(chosen)
