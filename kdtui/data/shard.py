"""Each process's share of the data when one run trains on several processes (torchrun).

The global batch is drawn exactly as a single process draws it (same seeded order, same
augmentation draws); rank r takes the r-th contiguous slice of it. So the images of one
step over all ranks are the single-process batch, and every image is seen once per epoch
over all ranks. The test set is split by striding, each image counted on one rank.

Usage::

    shard = Shard(rank=1, world=4)
    idx = order[start:start + batch_size][shard.part(batch_size)]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch


@dataclass(frozen=True)
class Shard:
    rank: int = 0
    world: int = 1

    def part(self, batch: int) -> slice:
        """This rank's rows of a global batch of ``batch`` items (an equal share each)."""
        share = batch // self.world
        return slice(self.rank * share, (self.rank + 1) * share)

    def test_indices(self, count: int) -> range:
        return range(self.rank, count, self.world)


class ShardedBatches(torch.utils.data.Sampler):
    """A DataLoader ``batch_sampler``: the global batches of a seeded permutation (the last
    incomplete one dropped, unless the set is smaller than one batch), this rank's share of each."""

    def __init__(self, count: int, batch_size: int, seed: int, shard: Shard) -> None:
        self.count, self.batch_size, self.seed, self.shard = count, batch_size, seed, shard

    def global_batches(self) -> Iterator[list[int]]:
        order = torch.randperm(self.count, generator=torch.Generator().manual_seed(self.seed)).tolist()
        last_start = max(self.count - self.batch_size, 0)
        for start in range(0, last_start + 1, self.batch_size):
            yield order[start:start + self.batch_size]

    def __iter__(self) -> Iterator[list[int]]:
        for batch in self.global_batches():
            yield batch[self.shard.part(len(batch))]

    def __len__(self) -> int:
        return max(self.count - self.batch_size, 0) // self.batch_size + 1
