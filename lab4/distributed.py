"""Data-parallel training across processes (torchrun), and a no-op when there is one process.

`torchrun --nproc_per_node=N -m lab4 train ...` sets RANK / WORLD_SIZE / LOCAL_RANK; each
process then trains on its own share of the clips, gradients are averaged by
DistributedDataParallel, and only rank 0 writes logs and checkpoints.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1

    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    def mean(self, tensor: torch.Tensor) -> torch.Tensor:
        """The mean of `tensor` over all ranks (every rank gets it)."""
        if not self.active:
            return tensor
        tensor = tensor.clone()
        dist.all_reduce(tensor)
        return tensor / self.world

    def gather(self, obj: Any) -> list[Any]:
        if not self.active:
            return [obj]
        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def shard(self, items):
        """This rank's share: every world-th item, the same count on every rank."""
        per_rank = len(items) // self.world
        return items[self.rank::self.world][:per_rank]


def init_from_env(use_cuda: bool) -> Ranks:
    """Join the process group that torchrun describes in the environment, if any."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Ranks()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        # NCCL between GPUs; gloo on CPU.
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    if use_cuda:
        torch.cuda.set_device(local_rank)
    return Ranks(rank=rank, world=world, local_rank=local_rank)


def shutdown(ranks: Ranks) -> None:
    if ranks.active and dist.is_initialized():
        dist.destroy_process_group()


def parameters_in_sync(model: torch.nn.Module, ranks: Ranks) -> bool:
    """Whether every rank holds the same weights (DDP's promise, checked at the end of a run)."""
    checksum = float(sum(p.detach().double().sum() for p in model.parameters()))
    sums = ranks.gather(checksum)
    return all(s == sums[0] for s in sums)
