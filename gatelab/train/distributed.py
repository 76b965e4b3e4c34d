"""Data-parallel training under ``torchrun``: process group set-up, the rank's share of a batch, and reductions.

Without ``torchrun`` (no ``WORLD_SIZE`` in the environment, or 1) everything here is the identity, so the loop has
one code path. Backends: gloo on CPU, nccl on CUDA.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_world(device: str) -> tuple[World, str]:
    """Join the ``torchrun`` process group if there is one; returns the world and this rank's device (each rank
    gets its own GPU on CUDA)."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        return World(), device
    rank = int(os.environ["RANK"])
    if torch.device(device).type == "cuda":
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', rank))}"
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return World(rank, size), device


def close_world(world: World) -> None:
    if world.size > 1 and dist.is_initialized():
        dist.destroy_process_group()


def shard(batch: torch.Tensor, world: World) -> torch.Tensor:
    """This rank's equal, contiguous share of a global batch (rows ``rank * B/W`` to ``(rank + 1) * B/W``)."""
    n = batch.shape[0]
    if n % world.size:
        raise ValueError(f"batch_size={n} must be divisible by the number of processes ({world.size})")
    per = n // world.size
    return batch[world.rank * per:(world.rank + 1) * per]


def mean_across(value: torch.Tensor, world: World) -> torch.Tensor:
    """The mean of a scalar over all ranks (the value itself in a single process)."""
    if world.size == 1:
        return value
    value = value.detach().clone()
    dist.all_reduce(value)
    return value / world.size
