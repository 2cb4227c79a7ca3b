"""The text trainer's process group: one process per GPU (torchrun, see trainer.launcher) or
one per host, DDP over NCCL (GPUs) or gloo (CPUs), as the vision trainer.

Every rank must take the same decisions at the same step or a collective hangs, so the
ones that can differ are agreed on: rank 0 alone fetches the dataset (and the fine-tuning
source) and broadcasts it, and each step's loss and stop request are all-reduced together
(one small collective per step), so a SIGTERM seen by any rank stops all of them after
the same step and the reported loss is the mean over ranks.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

log = logging.getLogger("trainer.text")


@dataclass(frozen=True)
class Group:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")  # where the collectives' tensors live

    @property
    def active(self) -> bool:
        return self.world > 1

    def broadcast(self, value: Any) -> Any:
        """Rank 0's `value` on every rank (pickled; fine for records and a small model)."""
        if not self.active:
            return value
        box = [value if self.rank == 0 else None]
        dist.broadcast_object_list(box, src=0, device=self.device)
        return box[0]

    def agree(self, loss: float, stop: bool) -> tuple[float, bool]:
        """(mean loss over ranks, whether any rank was asked to stop)."""
        if not self.active:
            return loss, stop
        both = torch.tensor([loss, 1.0 if stop else 0.0], dtype=torch.float64, device=self.device)
        dist.all_reduce(both)
        return float(both[0]) / self.world, bool(both[1] > 0)

    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    def close(self) -> None:
        if self.active and dist.is_initialized():
            dist.destroy_process_group()


def setup(env, use_cuda: bool) -> Group:
    """The group this process belongs to: torchrun's variables, else one process per host."""
    environ = env.environ
    if int(environ.get("WORLD_SIZE", "1")) > 1:
        rank, world = int(environ["RANK"]), int(environ["WORLD_SIZE"])
        local = int(environ.get("LOCAL_RANK", "0"))
    elif len(env.hosts) > 1:
        rank, world, local = env.node_rank, len(env.hosts), 0
        os.environ.setdefault("MASTER_ADDR", env.hosts[0])
        os.environ.setdefault("MASTER_PORT", environ.get("MASTER_PORT", "29500"))
    else:
        return Group()
    device = torch.device("cpu")
    if use_cuda:
        device = torch.device("cuda", local % torch.cuda.device_count())
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend, init_method="env://", rank=rank, world_size=world)
    log.info("Rank %d of %d (%s, local rank %d)", rank, world, backend, local)
    return Group(rank, world, local, device)
