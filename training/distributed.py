"""Distributed training as torchrun launches it: RANK / WORLD_SIZE / LOCAL_RANK in the
environment switch on DistributedDataParallel (NCCL on CUDA, gloo on CPU). Without them every
helper here is a no-op for a single process."""
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from utils.errors import UserError


@dataclass(frozen=True)
class DistEnv:
    """This process's place in the job: rank, world size, rank on this machine."""
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1
    launched: bool = False  # started by torchrun: join a process group even with one rank

    @property
    def distributed(self) -> bool:
        return self.launched

    @property
    def is_main(self) -> bool:
        """Only rank 0 writes files, logs and progress bars."""
        return self.rank == 0


def dist_env() -> DistEnv:
    """Read torchrun's variables (a single process when RANK is absent)."""
    if 'RANK' not in os.environ:
        return DistEnv()
    try:
        return DistEnv(int(os.environ['RANK']), int(os.environ['WORLD_SIZE']),
                       int(os.environ.get('LOCAL_RANK', 0)), int(os.environ.get('LOCAL_WORLD_SIZE', 1)),
                       launched=True)
    except (KeyError, ValueError):
        raise UserError('RANK is set but WORLD_SIZE/LOCAL_RANK are missing or not integers: '
                        'launch distributed training with torchrun') from None


def init_distributed(env: DistEnv, device: torch.device) -> None:
    """Join the process group: NCCL when training on CUDA, gloo on CPU."""
    if env.distributed and not dist.is_initialized():
        backend = 'nccl' if device.type == 'cuda' else 'gloo'
        if device.type == 'cuda':
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend)


def shutdown() -> None:
    """Leave the process group, if this process joined one."""
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    """Wait for every rank (no-op for a single process)."""
    if dist.is_initialized():
        dist.barrier()


def all_mean(value: torch.Tensor) -> torch.Tensor:
    """The mean of a tensor over ranks (itself for one process); every rank gets the result."""
    if not dist.is_initialized():
        return value
    value = value.detach().clone()
    dist.all_reduce(value)
    return value / dist.get_world_size()


def all_sum(value: torch.Tensor) -> torch.Tensor:
    """The sum of a tensor over ranks (itself for one process); every rank gets the result."""
    if not dist.is_initialized():
        return value
    value = value.detach().clone()
    dist.all_reduce(value)
    return value


def all_gather(obj: Any) -> list:
    """[obj of rank 0, obj of rank 1, ...] on every rank ([obj] for one process)."""
    if not dist.is_initialized():
        return [obj]
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out
