"""Batches from uint8 image tensors held in memory, augmented a whole batch at a time.

Random crop with black padding (torchvision's ``RandomCrop(size, padding)`` followed by
``RandomHorizontalFlip``) is done with tensor indexing on the batch (on the training
device), which on small images is far faster than per-image PIL transforms in worker
processes. Shuffling and augmentation draw from a generator seeded by (seed, epoch), so a
resumed run sees the same batches.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
from torch import Tensor

from kdtui.data.shard import Shard


def normalise(images_u8: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    """(x / 255 − mean) / std per channel, as one multiply and one subtract."""
    scale = (1 / (255 * std)).view(1, -1, 1, 1)
    return images_u8.float().mul_(scale).sub_((mean / std).view(1, -1, 1, 1))


def crop_flip_draws(n: int, generator: torch.Generator, padding: int) -> tuple[Tensor, Tensor, Tensor]:
    """The random crop offsets (dy, dx) and flips of ``n`` images, on the CPU."""
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    return dy, dx, torch.rand(n, generator=generator) < 0.5


def random_crop_flip(images: Tensor, generator: torch.Generator, padding: int = 4,
                     draws: tuple[Tensor, Tensor, Tensor] | None = None) -> Tensor:
    """Pad by ``padding`` (zeros), crop back to the original size at a random offset per
    image (uniform over 0..2·padding in each axis), and flip half of the images horizontally.
    ``draws``: the images' offsets and flips when drawn for a larger batch (a rank's share)."""
    n, c, h, w = images.shape
    padded = torch.nn.functional.pad(images, (padding,) * 4)
    # Drawn on the host (the seeded CPU generator); copied without waiting for the device,
    # so a GPU step never stalls on them (from pageable memory that copy is still safe).
    dy, dx, flip = (t.to(images.device, non_blocking=True)
                    for t in (draws or crop_flip_draws(n, generator, padding)))
    rows = dy[:, None] + torch.arange(h, device=images.device)[None, :]           # n × h
    cols = torch.arange(w, device=images.device)[None, :].expand(n, w)
    cols = torch.where(flip[:, None], cols.flip(1), cols) + dx[:, None]           # n × w
    # One gather over each image's flattened padded plane: 2-4× faster on the CPU than
    # advanced indexing with three index tensors.
    within = (rows[:, :, None] * (w + 2 * padding) + cols[:, None, :]).view(n, 1, h * w)
    return padded.view(n, c, -1).gather(2, within.expand(n, c, h * w)).view(n, c, h, w)


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
                      with_indices: bool = False, shard: Shard = Shard()) -> Iterator[tuple[Tensor, ...]]:
        """``batch_size`` is the global batch; ``shard`` picks this process's rows of it."""
        images_all, labels_all, mean, std = self.on(device)
        generator = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        order = torch.randperm(len(self.labels), generator=generator).to(device)
        # Drop the last incomplete batch (BatchNorm dislikes a batch of one), unless the
        # whole set is smaller than one batch.
        last_start = max(len(order) - batch_size, 0)
        for start in range(0, last_start + 1, batch_size):
            batch = order[start:start + batch_size]
            part = shard.part(len(batch))
            idx = batch[part]
            with one_cpu_thread(device):
                images = images_all[idx]
                if self.augment:
                    # On the uint8 images, before normalising: the padding is black. Drawn for
                    # the whole global batch, so a rank's images are augmented as in one process.
                    draws = crop_flip_draws(len(batch), generator, self.padding)
                    images = random_crop_flip(images, generator, self.padding, tuple(d[part] for d in draws))
                images = normalise(images, mean, std).contiguous(memory_format=torch.channels_last)
            yield (images, labels_all[idx], idx) if with_indices else (images, labels_all[idx])

    def test_batches(self, batch_size: int, device: torch.device,
                     shard: Shard = Shard()) -> Iterator[tuple[Tensor, Tensor]]:
        images_all, labels_all, mean, std = self.on(device)
        if shard.world > 1:  # every world-th image from the rank-th: each counted once
            images_all, labels_all = images_all[shard.rank::shard.world], labels_all[shard.rank::shard.world]
        for start in range(0, len(labels_all), batch_size):
            with one_cpu_thread(device):
                images = normalise(images_all[start:start + batch_size], mean, std)
                images = images.contiguous(memory_format=torch.channels_last)
            yield images, labels_all[start:start + batch_size]


@contextmanager
def one_cpu_thread(device: torch.device) -> Iterator[None]:
    """Prepare a batch on the CPU in one thread. These are small memory-bound operations
    (a CIFAR batch is 0.4 MB) that threads do not speed up, and on shared cores each
    parallel region waits for its slowest thread: on 2 loaded cores a batch took 10× longer
    with 2 threads than with 1. Training keeps its threads (restored before each yield)."""
    threads = torch.get_num_threads()
    if device.type != "cpu" or threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


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


STATS_IMAGES = 2000  # normalisation statistics come from at most this many training images


def stats_step(count: int) -> int:
    """Take every n-th of ``count`` training images for the statistics (evenly spaced)."""
    return max(count // STATS_IMAGES, 1)


def channel_stats(images_u8: Tensor) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of uint8 images (N×C×H×W), on the 0…1 scale; every
    ``stats_step(N)``-th image is used."""
    pixels = images_u8[::stats_step(len(images_u8))].float().div(255).transpose(0, 1).flatten(1)
    return pixels.mean(1).tolist(), pixels.std(1).clamp_min(1e-6).tolist()
