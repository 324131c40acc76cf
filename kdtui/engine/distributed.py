"""One run over several processes started by ``torchrun``: the process group, who this
process is, and the few collective operations the trainer and the launch need.

torchrun starts one process (rank) per GPU with RANK, WORLD_SIZE and LOCAL_RANK in its
environment. kdtui then trains one run with DistributedDataParallel: every rank builds the
same student, teacher and loss modules; the student is wrapped in DDP (its gradients are
averaged across ranks in the backward pass), the gradients of learned loss modules are
averaged here, each rank draws its share of every global batch, and metrics and test
accuracy are summed over the ranks. Only rank 0 writes the run folder. Without torchrun
every helper here is a no-op for one process, so the trainer has a single code path.

Usage::

    with process_group():                 # in `kdtui run`; nothing happens without torchrun
        world = current_world()           # World(rank=1, size=4, local_rank=1, active=True)
        device = device_for("auto", world)   # cuda:LOCAL_RANK, or cpu
        value = from_main(world, lambda: create_run(root, name))   # run on rank 0, shared
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Any, Callable, Iterator, TypeVar

import torch
import torch.distributed as dist
from torch import Tensor, nn

from kdtui.data.shard import Shard
from kdtui.errors import ConfigError, KdtuiError

TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK")
SYNC_BN_NEEDS_CUDA = ("train.sync_bn: PyTorch's SyncBatchNorm runs only on CUDA GPUs; use "
                      "--set train.sync_bn=false for a CPU run.")
T = TypeVar("T")


def launched_by_torchrun() -> bool:
    return all(name in os.environ for name in TORCHRUN_VARIABLES)


@dataclass(frozen=True)
class World:
    """This process's place among the processes training one run."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    active: bool = False   # a process group exists (launched by torchrun)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def shard(self) -> Shard:
        return Shard(self.rank, self.size)


def current_world() -> World:
    if not (dist.is_available() and dist.is_initialized()):
        return World()
    return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)), True)


@contextlib.contextmanager
def process_group() -> Iterator[World]:
    """Join torchrun's process group for the duration of the block (nothing without torchrun).
    gloo carries CPU tensors, NCCL CUDA tensors (when this machine has CUDA): a CPU run on a
    GPU machine and the CPU-side stop vote work either way."""
    if not launched_by_torchrun() or dist.is_initialized():
        yield current_world()
        return
    try:
        local_rank = int(os.environ["LOCAL_RANK"])
    except ValueError:
        raise KdtuiError(f"LOCAL_RANK={os.environ['LOCAL_RANK']!r} is not a number; start kdtui "
                         "with torchrun, which sets it.") from None
    cuda = torch.cuda.is_available()
    if cuda and local_rank < torch.cuda.device_count():
        torch.cuda.set_device(local_rank)  # NCCL binds each rank to its own GPU
    try:
        dist.init_process_group(backend="cpu:gloo,cuda:nccl" if cuda else "gloo")
    except (RuntimeError, ValueError) as exc:
        raise KdtuiError(f"Could not join the torchrun process group ({str(exc).splitlines()[0]}). "
                         "Check --nnodes, --rdzv-endpoint and that every node can reach it.") from None
    try:
        yield current_world()
    finally:
        with contextlib.suppress(Exception):  # a dead peer must not hide the real error
            dist.destroy_process_group()


def device_for(name: str, world: World) -> torch.device:
    """Under torchrun, each rank's training device: the GPU of its LOCAL_RANK (for
    ``train.device`` auto or cuda), or the CPU."""
    if name == "cpu" or (name == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if name not in ("auto", "cuda"):
        raise ConfigError(f"train.device: {name} cannot be used under torchrun, where each process "
                          "takes the GPU of its LOCAL_RANK. Use --set train.device=cuda (or auto, or cpu).")
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if world.local_rank >= count:
        raise ConfigError(f"train.device: process {world.rank} has LOCAL_RANK {world.local_rank}, but "
                          f"this node has {count} CUDA GPU(s). Start at most {count} process(es) per "
                          "node (torchrun --nproc-per-node), or use --set train.device=cpu.")
    return torch.device("cuda", world.local_rank)


def local_batch_size(batch_size: int, world: World) -> int:
    """Each rank's share of the global ``train.batch_size``."""
    if batch_size % world.size:
        raise ConfigError(f"train.batch_size: {batch_size} is the global batch and must divide "
                          f"evenly over the {world.size} processes; use a multiple of {world.size} "
                          f"(e.g. --set train.batch_size={max(batch_size // world.size, 1) * world.size}).")
    return batch_size // world.size


def wrap_student(student: nn.Module, device: torch.device, world: World) -> nn.Module:
    """The module the training step calls: the student itself, or DDP around it (DDP
    broadcasts rank 0's weights now, then averages gradients in every backward pass)."""
    if world.size <= 1:
        return student
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(student, device_ids=ids, output_device=device.index if ids else None)


def sync_batchnorm(student: nn.Module, device: torch.device, world: World) -> nn.Module:
    """train.sync_bn: BatchNorm statistics over the global batch instead of each rank's share."""
    if world.size <= 1:
        return student  # one process already normalises over the whole batch
    if device.type != "cuda":
        raise ConfigError(SYNC_BN_NEEDS_CUDA)
    return nn.SyncBatchNorm.convert_sync_batchnorm(student)


def average_gradients(parameters: list[nn.Parameter], world: World) -> None:
    """Average the gradients of parameters DDP does not own (learned loss modules), with one
    all-reduce; a parameter without a gradient on every rank is left without one."""
    if world.size <= 1:
        return
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world.size
    offset = 0
    for grad in grads:
        grad.copy_(flat[offset:offset + grad.numel()].view_as(grad))
        offset += grad.numel()


def broadcast_state(module: nn.Module, world: World) -> None:
    """Copy rank 0's parameters and buffers to every rank."""
    if world.size <= 1:
        return
    with torch.no_grad():
        for tensor in [*module.parameters(), *module.buffers()]:
            dist.broadcast(tensor, src=0)


def broadcast_norm_statistics(module: nn.Module, world: World) -> None:
    """Copy rank 0's BatchNorm running statistics to every rank: each rank updates them with
    its own share of the batch. The other buffers (CRD's memories, ...) are equal already."""
    if world.size <= 1:
        return
    with torch.no_grad():
        for layer in module.modules():
            if isinstance(layer, nn.modules.batchnorm._NormBase):
                for tensor in layer.buffers(recurse=False):
                    dist.broadcast(tensor, src=0)


def sum_over_ranks(tensor: Tensor, world: World) -> Tensor:
    """``tensor`` summed over all ranks (the tensor itself for one process)."""
    if world.size > 1:
        tensor = tensor.clone()
        dist.all_reduce(tensor)
    return tensor


def mean_over_ranks(values: dict[str, Tensor], world: World) -> dict[str, Tensor]:
    """Per-rank scalars averaged over the ranks, in one all-reduce. Each rank's value is a mean
    over an equal share of the global batch, so their mean is the global batch's mean."""
    if world.size <= 1 or not values:
        return values
    stacked = sum_over_ranks(torch.stack([torch.as_tensor(v, dtype=torch.float32) for v in values.values()]),
                             world) / world.size
    return dict(zip(values, stacked.unbind()))


def all_ranks_agree(flag: Tensor, world: World) -> bool:
    """True when the (boolean scalar) ``flag`` is true on every rank; one host sync."""
    if world.size > 1:
        flag = sum_over_ranks(flag.to(torch.int32), world) == world.size
    return bool(flag)


def main_first(world: World, work: Callable[[], bool]) -> bool:
    """``work()`` on rank 0 and, once it has succeeded there, on the other ranks, which then
    find what rank 0 made (the image cache) instead of making it again at the same time.
    False on every rank when it returned False (stopped) on any."""
    if world.size <= 1:
        return work()
    if not all_ranks_agree(torch.tensor(work() if world.is_main else True), world):
        return False
    return all_ranks_agree(torch.tensor(True if world.is_main else work()), world)


def from_main(world: World, make: Callable[[], T]) -> T:
    """``make()`` run on rank 0 and its value handed to every rank (picklable values). A
    KdtuiError on rank 0 is raised on every rank, so all ranks stop with the same message."""
    if world.size <= 1:
        return make()
    box: list[Any] = [None]
    error: KdtuiError | None = None
    if world.is_main:
        try:
            box[0] = ("ok", make())
        except KdtuiError as exc:
            error = exc
            box[0] = ("error", str(exc))
    dist.broadcast_object_list(box, src=0)
    if error is not None:
        raise error
    kind, value = box[0]
    if kind == "error":
        raise KdtuiError(value)
    return value


def check_launch(device: str, batch_size: int, sync_bn: bool, world: World) -> None:
    """What each rank can check on its own (its GPU, its share of the batch, SyncBatchNorm's
    device), checked on all ranks together before any run folder exists: a problem of one
    rank stops every rank with its message, instead of leaving the others waiting for it."""
    if not world.active:
        return
    error: str | None = None
    try:
        chosen = device_for(device, world)
        local_batch_size(batch_size, world)
        if sync_bn and world.size > 1 and chosen.type != "cuda":
            raise ConfigError(SYNC_BN_NEEDS_CUDA)
    except KdtuiError as exc:
        error = str(exc)
    errors: list[Any] = [None] * world.size
    dist.all_gather_object(errors, error)
    first = next(((rank, text) for rank, text in enumerate(errors) if text), None)
    if first is not None:
        rank, text = first
        raise ConfigError(text if text == error else f"Process {rank}: {text}")


def check_same(world: World, value: Any, what: str) -> None:
    """A clear error on every rank when ranks were started with different ``value``s (e.g.
    different --set overrides): they would otherwise train different things silently."""
    if world.size <= 1:
        return
    values: list[Any] = [None] * world.size
    dist.all_gather_object(values, value)
    differ = [rank for rank, other in enumerate(values) if other != values[0]]
    if differ:
        which = (f"Process {differ[0]} was" if len(differ) == 1
                 else f"Processes {', '.join(map(str, differ))} were")
        raise KdtuiError(f"{which} started with a different {what} than process 0; start every "
                         "process with the same command line.")


def barrier(world: World) -> None:
    if world.size > 1:
        dist.barrier()


def decorrelate_rng(seed: int, epoch: int, world: World) -> None:
    """Give ranks other than 0 their own global random stream (e.g. CRD's negatives, folder
    augmentation without workers): equal streams would draw the same numbers on every rank.
    Rank 0 keeps the single-process stream."""
    if world.rank > 0:
        torch.manual_seed(seed * 1_000_003 + world.rank * 7_919 + epoch)


def is_communication_failure(exc: BaseException) -> bool:
    """An error of a collective: usually another rank died or was killed."""
    if isinstance(exc, getattr(dist, "DistError", ())):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and any(word in text for word in ("gloo", "nccl", "connection closed"))


class StopVote:
    """Ranks agree on when to stop. Each step every rank puts its own stop flags into a MAX
    all-reduce of a CPU tensor (gloo, so no GPU sync), started at one step and read at the
    next: it costs no waiting, and every rank sees the same answer at the same step. For
    one process it answers from the local flags at once."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.flags = torch.zeros(2, dtype=torch.int32)
        self.pending: Any = None

    def local(self, stop: bool, at_epoch_end: bool) -> Tensor:
        return torch.tensor([int(stop), int(at_epoch_end)], dtype=torch.int32)

    def settle(self) -> tuple[bool, bool]:
        if self.pending is None:
            return False, False
        self.pending.wait()
        self.pending = None
        stop, at_end = self.flags.tolist()
        return bool(stop), bool(at_end)

    def poll(self, stop: bool, at_epoch_end: bool) -> bool:
        """Whether every rank is to stop now (a rank asked at the previous step)."""
        if self.world.size <= 1:
            return stop
        agreed, _ = self.settle()
        self.flags = self.local(stop, at_epoch_end)
        self.pending = dist.all_reduce(self.flags, op=dist.ReduceOp.MAX, async_op=True)
        return agreed

    def at_epoch_end(self, stop: bool, at_epoch_end: bool) -> bool:
        """At the end of an epoch: whether any rank asked to stop (then all stop once the epoch
        is saved). One process keeps its own rule (the trainer checks its events)."""
        if self.world.size <= 1:
            return False
        self.settle()
        self.flags = self.local(stop, at_epoch_end)
        dist.all_reduce(self.flags, op=dist.ReduceOp.MAX)
        return bool(self.flags.any())
