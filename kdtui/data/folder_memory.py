"""Folder datasets served from memory when they fit: the image cache on the training device.

An image folder whose images fit ``data.memory_budget_gb`` (train + test, 3·S·S bytes an
image) and are all S×S (S the size the network sees) is decoded once into the image cache
(:mod:`kdtui.data.image_cache`) and then batched by :class:`InMemoryLoader` — the same
padded random crop with black borders and flip as torchvision's ``RandomCrop(S, padding)``
+ ``RandomHorizontalFlip``, on whole batches. Anything else (over the budget, a budget of
0, images of other sizes, ImageNet's random-resized crops) reads the files per image in
DataLoader workers, as before, and says why in the run's log.

The whole split is cached when it fits (one cache serves every subset and seed), else only
the run's subset; the subset is the same images either way (the run's positions in it).

Usage::

    batches = FolderBatches(name, FolderSplit(...), FolderSplit(...), side, stats, cfg, seed,
                            padding, dataloader_path)
    batches.prepare(log=print, stop=stop_event)   # decodes on first use, with progress
    for images, labels in batches.train_batches(128, 1, device): ...
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import torch
from torch import Tensor

from kdtui.data.image_cache import ImageCache, MixedSizes
from kdtui.data.info import DataOptions
from kdtui.data.memory import InMemoryLoader, channel_stats
from kdtui.data.shard import Shard

Log = Callable[[str], None]
# (mean, std) -> (train_batches, test_batches) reading the files with DataLoader workers.
DataLoaderPath = Callable[[tuple | None], tuple[Callable, Callable]]


@dataclass
class FolderSplit:
    folder: Path
    samples: list[tuple[Path, int]]  # every image of the folder, in scan order
    keep: Tensor                     # positions of the run's images (its subset) in ``samples``
    whole: bool = True               # cache all of ``samples`` (else only the kept ones)

    @property
    def kept(self) -> list[tuple[Path, int]]:
        return [self.samples[i] for i in self.keep.tolist()]


class FolderBatches:
    """Training and test batches of a folder dataset from whichever path fits (see the module)."""

    def __init__(self, name: str, train: FolderSplit, test: FolderSplit, side: int,
                 stats: tuple | None, cfg: DataOptions, seed: int, padding: int | None,
                 dataloader_path: DataLoaderPath) -> None:
        self.name, self.train, self.test, self.side = name, train, test, side
        self.stats, self.cfg, self.seed, self.padding = stats, cfg, seed, padding
        self.dataloader_path = dataloader_path
        self.source: tuple[Callable, Callable] | None = None
        self._lock = threading.Lock()

    def plan_memory(self) -> str | None:
        """Decide what to cache (whole splits when they fit the budget, else the run's subsets);
        returns why the folder cannot be served from memory at all, or None."""
        budget_gb = self.cfg.memory_budget_gb
        if not budget_gb:
            return "data.memory_budget_gb is 0"
        if self.padding is None:
            return "its augmentation (random-resized crops) is done per image"
        per_image = 3 * self.side * self.side
        whole = per_image * (len(self.train.samples) + len(self.test.samples))
        subset = per_image * (len(self.train.keep) + len(self.test.keep))
        if subset > budget_gb * 1e9:
            return (f"its {len(self.train.keep) + len(self.test.keep):,} images of {self.side}×{self.side} "
                    f"need {subset / 1e9:.1f} GB, over data.memory_budget_gb={budget_gb:g}")
        self.train.whole = self.test.whole = whole <= budget_gb * 1e9
        return None

    def prepare(self, log: Log | None = None, stop: threading.Event | None = None) -> bool:
        """Choose the path, decoding into the cache on first use; False if ``stop`` was set first."""
        log = log or (lambda text: None)
        with self._lock:
            if self.source is not None:
                return True
            reason = self.plan_memory()
            if reason is None:
                try:
                    self.source = self.from_cache(log, stop)
                    return self.source is not None
                except MixedSizes as mixed:
                    reason = (f"not all its images are {self.side}×{self.side} (e.g. {mixed.path} is "
                              f"{mixed.size[0]}×{mixed.size[1]}) and nothing is resized in memory")
            log(f"{self.name}: reading the image files with DataLoader workers, not from memory: {reason}")
            self.source = self.dataloader_path(self.stats)
            return True

    def from_cache(self, log: Log, stop: threading.Event | None) -> tuple[Callable, Callable] | None:
        images: list[Tensor] = []
        for split, what in ((self.train, "training images"), (self.test, "test images")):
            samples = split.samples if split.whole else split.kept
            cache = ImageCache.for_files([path for path, _ in samples], self.side, split.folder, split.whole)
            known = cache.known_mixed()
            if known is not None:
                raise known
            pixels = cache.load()
            if pixels is None:
                pixels = cache.build(log, stop.is_set if stop is not None else None, f"{self.name} {what}")
                if pixels is None:
                    return None
            tensor = torch.from_numpy(pixels)
            images.append(tensor[split.keep] if split.whole and len(split.keep) < len(tensor) else tensor)
        train_x, test_x = images
        train_y = torch.tensor([label for _, label in self.train.kept])
        test_y = torch.tensor([label for _, label in self.test.kept])
        mean, std = self.stats or channel_stats(train_x)
        mean, std = torch.tensor(mean, dtype=torch.float32), torch.tensor(std, dtype=torch.float32)
        log(f"{self.name}: {len(train_y):,} training and {len(test_y):,} test images in memory "
            f"({(train_x.numel() + test_x.numel()) / 1e6:,.0f} MB, from the image cache)")
        train = InMemoryLoader(train_x, train_y, mean, std, augment=self.cfg.augment, seed=self.seed,
                               padding=self.padding or 0)
        test = InMemoryLoader(test_x, test_y, mean, std, augment=False, seed=self.seed)
        return train.train_batches, test.test_batches

    def train_batches(self, batch_size: int, epoch: int, device: torch.device,
                      with_indices: bool = False, shard: Shard = Shard()) -> Iterator[tuple[Tensor, ...]]:
        self.prepare()
        assert self.source is not None
        return self.source[0](batch_size, epoch, device, with_indices=with_indices, shard=shard)

    def test_batches(self, batch_size: int, device: torch.device,
                     shard: Shard = Shard()) -> Iterator[tuple[Tensor, Tensor]]:
        self.prepare()
        assert self.source is not None
        return self.source[1](batch_size, device, shard=shard)
