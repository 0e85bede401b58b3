"""Exact multi-process inference (docs/inference.md): the processes of a torch.distributed group share one generation.

Inside a denoising step Sonic's circular windows are independent, so each rank denoises some of them (or some of a
window's guidance branches when there are fewer windows than ranks), the guided velocities are all-gathered, and
every rank averages all windows in the single-process order. :class:`Ranks` deals the work round-robin (item i to
rank i % size) and skips every collective when it is one process alone: a single process runs the same loop.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from sonic.checkpoints import resolve_device
from sonic.config import ConfigError, InferenceConfig

T = TypeVar("T")


@dataclass(frozen=True)
class Ranks:
    """The processes that share one generation: this process alone (the default) or a torch.distributed group."""

    rank: int = 0
    size: int = 1
    group: Any = None  # a torch.distributed ProcessGroup; None = the default group

    @classmethod
    def of_group(cls, group: Any = None) -> Ranks:
        """The ranks of ``group`` (default: the default group), which must be initialised."""
        if not (dist.is_available() and dist.is_initialized()):
            raise RuntimeError(
                "torch.distributed is not initialised: call torch.distributed.init_process_group() "
                "first, or start the processes with torchrun / accelerate launch"
            )
        return cls(dist.get_rank(group), dist.get_world_size(group), group)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def share(self, items: Sequence[T]) -> list[T]:
        """This rank's items: item i goes to rank i % size."""
        return list(items[self.rank :: self.size])

    def counts(self, total: int) -> list[int]:
        """How many of ``total`` items :meth:`share` gives each rank."""
        return [len(range(rank, total, self.size)) for rank in range(self.size)]

    def all_gather_shared(self, mine: list[torch.Tensor], total: int, like: torch.Tensor) -> list[torch.Tensor]:
        """The results of ``share(range(total))`` of every rank, on every rank, in item order; each result has
        ``like``'s shape, dtype and device. Alone: ``mine`` itself."""
        if self.size == 1:
            return mine
        stacked = torch.stack(mine) if mine else like.new_empty((0, *like.shape))
        per_rank = self.all_gather(stacked, self.counts(total))
        return [per_rank[item % self.size][item // self.size] for item in range(total)]

    def all_gather(self, mine: torch.Tensor, counts: list[int]) -> list[torch.Tensor]:
        """Every rank's ``mine`` (``counts[rank]`` rows along dim 0, the same trailing shape), on every rank."""
        if self.size == 1:
            return [mine]
        padded = _padded(mine, max(counts))
        received = [torch.empty_like(padded) for _ in range(self.size)]
        dist.all_gather(received, padded, group=self.group)
        return [tensor[:count] for tensor, count in zip(received, counts, strict=True)]

    def gather(self, mine: torch.Tensor, counts: list[int]) -> list[torch.Tensor]:
        """As :meth:`all_gather`, but only rank 0 receives; the other ranks get an empty list."""
        if self.size == 1:
            return [mine]
        padded = _padded(mine, max(counts))
        received = [torch.empty_like(padded) for _ in range(self.size)] if self.is_main else None
        dist.gather(padded, received, group=self.group, group_dst=0)
        if received is None:
            return []
        return [tensor[:count] for tensor, count in zip(received, counts, strict=True)]

    def broadcast(self, tensor: torch.Tensor) -> torch.Tensor:
        """Rank 0's ``tensor`` on every rank (a copy; the caller's tensor is left alone)."""
        if self.size == 1:
            return tensor
        tensor = tensor.clone().contiguous()
        dist.broadcast(tensor, group=self.group, group_src=0)
        return tensor

    def all_gather_objects(self, value: T) -> list[T]:
        """Every rank's picklable ``value``, in rank order, on every rank."""
        if self.size == 1:
            return [value]
        received: list[Any] = [None] * self.size
        dist.all_gather_object(received, value, group=self.group)
        return received


def _padded(rows: torch.Tensor, length: int) -> torch.Tensor:
    """``rows`` with zero rows appended up to ``length`` (collectives need one shape on every rank)."""
    if len(rows) == length:
        return rows.contiguous()
    return torch.cat([rows, rows.new_zeros((length - len(rows), *rows.shape[1:]))])


def work_units(num_windows: int, num_branches: int, num_ranks: int) -> list[tuple[int, tuple[int, ...]]]:
    """One denoising step's UNet calls as (window, branch rows) pairs, window by window.

    A whole window, all branches in one batch, is the single-process call. With three branches and at most half
    as many windows as ranks each window becomes two calls of batch 2: branches (0, 1) and branch 2 with a copy of
    itself (a row of weight 0), not a call of batch 1, which takes other matrix kernels and rounds differently.
    Rows of batches of 2 and 3 are bit-identical on the CPU (tests/test_parallel.py), and the first call's
    weighted sum plus the second's term is the single-process order of the guidance sum."""
    if num_branches > 2 and 2 * num_windows <= num_ranks:
        calls = [tuple(range(num_branches - 1)), (num_branches - 1, num_branches - 1)]
    else:
        calls = [tuple(range(num_branches))]
    return [(window, rows) for window in range(num_windows) for rows in calls]


def launched_processes() -> int:
    """The number of processes torchrun / accelerate launch started (their ``WORLD_SIZE``), 1 otherwise."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank_device(device: str) -> str:
    """This rank's device: one GPU per local rank (``cuda`` -> ``cuda:LOCAL_RANK``), or the CPU (``auto`` under
    ``accelerate launch`` with ``ACCELERATE_USE_CPU``, or without a GPU)."""
    if device == "auto" and os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes"):
        return "cpu"
    device = resolve_device(device, "inference.device")
    if torch.device(device).type != "cuda":
        return device
    local_rank, gpus = int(os.environ.get("LOCAL_RANK", "0")), torch.cuda.device_count()
    if local_rank >= gpus:
        raise ConfigError(
            f"{launched_processes()} processes were started but this machine has {gpus} GPU(s): "
            "start at most one process per GPU, or use --device cpu"
        )
    torch.cuda.set_device(local_rank)
    return f"cuda:{local_rank}"


@contextlib.contextmanager
def launched_group(config: InferenceConfig) -> Iterator[Ranks]:
    """Joins the processes torchrun / accelerate launch started (nccl on GPUs, gloo on the CPU; ``config.device``
    becomes this rank's device) and leaves the group at the end; yields :class:`Ranks` (alone when not launched)."""
    if launched_processes() == 1:
        yield Ranks()
        return
    config.device = rank_device(config.device)
    joined = not dist.is_initialized()
    if joined:
        dist.init_process_group("nccl" if torch.device(config.device).type == "cuda" else "gloo")
    try:
        yield Ranks.of_group()
    finally:
        if joined:
            dist.destroy_process_group()
