"""Where a training process runs: its device, and its rank among the processes of a DDP run.

``init_distributed`` reads what torchrun puts in the environment (``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``) and picks gloo on CPU, NCCL on GPU; without torchrun
the process is rank 0 of 1. Decisions that stop a run are taken on values all ranks share
(``raise_if_any``), so no rank is left waiting in a collective for one that has already stopped.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Optional

import torch
import torch.distributed as dist

from minibert.checks import check_device
from minibert.errors import ConfigError, TrainingError


@dataclass
class DistContext:
    """Where this process stands: its rank among ``world_size`` processes and its device."""
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def resolve_device(name: Optional[str], local_rank: int = 0) -> torch.device:
    """The device ``name`` asks for, checked before any work (``minibert.checks.check_device``): a
    ConfigError naming ``--device`` when torch does not know the name or this machine has no such device. ``None`` means ``cuda:LOCAL_RANK`` when
    CUDA is available, else the CPU; a bare ``cuda`` means ``cuda:LOCAL_RANK`` (one GPU per process)."""
    if name is None:
        return torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    device = check_device(name, error=ConfigError)
    if device.type == "cuda" and device.index is None:
        device = check_device(f"cuda:{local_rank}", error=ConfigError)
    return device


def init_distributed(device: Optional[str] = None) -> DistContext:
    """Join the process group torchrun describes in the environment, or stay single-process when
    there is none. The device is ``resolve_device(device)``; the backend follows it: NCCL for CUDA,
    gloo otherwise."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    chosen = resolve_device(device, local_rank)
    if chosen.type == "cuda":
        torch.cuda.set_device(chosen)
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if chosen.type == "cuda" else "gloo")
    return DistContext(rank, world_size, local_rank, chosen)


def cleanup_distributed() -> None:
    """Leave the process group, if one was joined."""
    if dist.is_initialized():
        dist.destroy_process_group()


def gather(context: DistContext, value: Any) -> list[Any]:
    """Every rank's ``value``, in rank order, on every rank (a list of one without DDP)."""
    if not context.distributed:
        return [value]
    values: list[Any] = [None] * context.world_size
    dist.all_gather_object(values, value)
    return values


def raise_if_any(context: DistContext, problem: Optional[str]) -> None:
    """Raise TrainingError on every rank if any rank found a problem (so none is left waiting)."""
    problems = [p for p in gather(context, problem) if p]
    if problems:
        raise TrainingError(problems[0])
