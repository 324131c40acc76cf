"""CRD's scoring of each sample against its 1 + K memory slots: gathering the slot vectors
(RepDistiller's way) against one product with the whole memory (what kdtui does when the
memory is not much larger than the slots drawn). Forward and backward, one process.

    python benchmarks/crd_scores.py [--batch 128] [--negatives 16384] [--dim 128]
"""

from __future__ import annotations

import argparse
import time

import torch


from kdtui.losses.crd import slot_dots  # kdtui: the whole memory at these sizes


def gathered(v, memory, slots):
    """RepDistiller's ContrastMemory: the B×(1+K)×D slot vectors, then a batched product."""
    return torch.bmm(memory[slots], v.unsqueeze(2)).squeeze(2)


def seconds_per_step(score, v, memory, slots, repeats: int) -> float:
    score(v, memory, slots).exp().sum().backward()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        score(v, memory, slots).exp().sum().backward()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--negatives", type=int, default=16384)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.manual_seed(0)
    print(f"batch {args.batch}, 1 + {args.negatives} slots, dim {args.dim}, "
          f"{torch.get_num_threads()} threads; seconds per step (one side), forward + backward")
    for rows in (10_000, 50_000):  # CIFAR subsets / CIFAR's training set
        memory = torch.nn.functional.normalize(torch.randn(rows, args.dim), dim=1)
        v = torch.nn.functional.normalize(torch.randn(args.batch, args.dim), dim=1).requires_grad_()
        slots = torch.randint(0, rows, (args.batch, args.negatives + 1))
        gather_s = seconds_per_step(gathered, v, memory, slots, args.repeats)
        whole_s = seconds_per_step(slot_dots, v, memory, slots, args.repeats)
        print(f"memory of {rows:,} rows: gather {gather_s:.3f} s, kdtui {whole_s:.3f} s, "
              f"ratio {gather_s / whole_s:.1f}x")


if __name__ == "__main__":
    main()
