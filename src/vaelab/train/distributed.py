"""Multi-process data parallelism with ``torch.distributed``, launched by ``torchrun``.

Each rank draws its own slice of every global batch (see :mod:`vaelab.data.batching`),
computes gradients on it, and the gradients are averaged across ranks with one coalesced
all-reduce per step, so W ranks with batch B/W make the same update as one process with
batch B (for losses that are means over the batch). Rank 0 writes all files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device_type: str) -> DistInfo:
    """Join the process group described by torchrun's environment (or run alone)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank = int(os.environ["RANK"])
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        if device_type == "cuda":
            torch.cuda.set_device(local)
        dist.init_process_group(backend=backend)
    return DistInfo(rank=rank, world_size=world, local_rank=local)


def average_gradients(params: list[torch.nn.Parameter], world_size: int) -> None:
    """Average ``.grad`` over ranks with one all-reduce of a flat buffer."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat.div_(world_size)
    torch._foreach_copy_(
        grads,
        [
            chunk.view_as(g)
            for chunk, g in zip(flat.split([g.numel() for g in grads]), grads, strict=True)
        ],
    )


def broadcast_module(module: torch.nn.Module) -> None:
    """Make every rank start from rank 0's parameters and buffers."""
    for tensor in module.state_dict().values():
        dist.broadcast(tensor, src=0)


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def shutdown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
