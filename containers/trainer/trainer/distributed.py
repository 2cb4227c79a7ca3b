"""The one distributed runtime of both trainers: process group, agreement, writer, barriers.

Every rank of a job (one per host, or one per GPU under torchrun, see trainer.launcher) must
take the same decisions at the same step, or a collective hangs. So the decisions that can
differ between hosts are agreed on, never assumed:

- `agree_stop(flag)`: an all-reduce (MAX) every rank calls at the same point; a stop request,
  a spot-interruption notice (both SIGTERM) or a failure seen by any rank stops all of them
  there. A rank that failed re-raises its own error; every other rank raises a `PeerFailure`
  carrying that rank's code, type and message, so whichever host's failure report the
  platform shows, it names the cause and the host.
- `broadcast(value)`: rank 0's choice (the records it fetched, the checkpoint to resume) on
  every rank.
- `is_writer`: rank 0 alone writes checkpoints, plots data, heartbeats and the model; the
  others wait for it at a `barrier`.

These control messages travel on a gloo group of their own, on the CPU: agreeing on a flag
never waits for the GPU's stream, and `monitored_barrier` names the rank that did not come.
Every collective has a timeout (`AIFACTORY_COLLECTIVE_TIMEOUT_S`, 30 minutes by default: a
barrier waits while rank 0 evaluates), so a dead or hung peer fails the job with a message
that says so instead of hanging it until SageMaker's maximum runtime.
"""

from __future__ import annotations

import datetime
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist

from trainer import launcher
from trainer.failure import describe

log = logging.getLogger("trainer.distributed")

TIMEOUT_ENV = "AIFACTORY_COLLECTIVE_TIMEOUT_S"
DEFAULT_TIMEOUT_S = 1800.0


class PeerFailure(Exception):
    """Another rank failed at an agreed point; `origin` is its failure description
    (trainer.failure.describe) and `rank` its rank."""

    def __init__(self, message: str, origin: dict, rank: int):
        super().__init__(message)
        self.origin, self.rank = origin, rank


class PeerLost(RuntimeError):
    """A collective failed or timed out: a peer exited or stopped answering (E01)."""


def peer_failure(origin: dict, rank: int, host: str) -> PeerFailure:
    """A PeerFailure whose class is named like the origin's exception, so the failure report and
    heartbeat carry its code (contracts.statuses.exception_code reads the class names)."""
    kind = type(str(origin.get("type") or "Exception"), (PeerFailure,), {})
    message = f"{host} (rank {rank}) failed: {origin.get('message', '')}"
    return kind(message, origin, rank)


@dataclass(frozen=True)
class Group:
    """This process's place in the job. A single process is a group of one: every method
    then does what the lone rank would (no collectives), so callers need no branches."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")  # where the training collectives' tensors live
    hosts: tuple[str, ...] = ("algo-1",)
    timeout: float = DEFAULT_TIMEOUT_S
    control: Any = field(default=None, compare=False, repr=False)  # the gloo group for agreement

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def is_writer(self) -> bool:
        """Rank 0 alone writes checkpoints, plots data, heartbeats and model.tar.gz."""
        return self.rank == 0

    def host_of(self, rank: int) -> str:
        """The host a rank runs on (ranks are laid out host by host, as torchrun numbers them)."""
        per_host = max(1, self.world // max(1, len(self.hosts)))
        index = min(rank // per_host, len(self.hosts) - 1)
        return self.hosts[index]

    # --- collectives -----------------------------------------------------------------------
    def _lost(self, what: str, exc: BaseException) -> PeerLost:
        return PeerLost(
            f"{self.host_of(self.rank)} (rank {self.rank} of {self.world}) lost the other hosts at {what}: "
            f"a peer exited or did not answer within {self.timeout:.0f} s ({type(exc).__name__}: {exc}). "
            "The failing host's log and failure report name the cause; restore the job to resume "
            f"from its last checkpoint, or raise {TIMEOUT_ENV} if rank 0's evaluation takes longer."
        )

    def agree_stop(self, flag: bool, failure: BaseException | None = None, what: str = "a step") -> bool:
        """Whether any rank asked to stop; raises when any rank passes a `failure`.

        Every rank calls this at the same point (the same step), so they all stop there."""
        if not self.active:
            if failure is not None:
                raise failure
            return bool(flag)
        # [stop, 1 + the highest failed rank]: MAX keeps any stop and one failed rank
        votes = torch.tensor([1 if flag else 0, self.rank + 1 if failure is not None else 0])
        try:
            dist.all_reduce(votes, op=dist.ReduceOp.MAX, group=self.control)
        except RuntimeError as exc:
            raise self._lost(what, exc) from exc
        failed = int(votes[1]) - 1
        if failed >= 0:
            origin = self.broadcast(describe(failure) if self.rank == failed else None, src=failed)
            if failure is not None:  # its own error first, also when another rank failed too
                raise failure
            log.error("%s (rank %d) failed at %s: stopping with it", self.host_of(failed), failed, what)
            raise peer_failure(origin, failed, self.host_of(failed))
        return bool(votes[0])

    def agree(self, loss: float, stop: bool) -> tuple[float, bool]:
        """(mean loss over ranks, whether any rank was asked to stop): one collective a step."""
        if not self.active:
            return loss, stop
        both = torch.tensor([loss, 1.0 if stop else 0.0], dtype=torch.float64)
        try:
            dist.all_reduce(both, group=self.control)
        except RuntimeError as exc:
            raise self._lost("a step", exc) from exc
        return float(both[0]) / self.world, bool(both[1] > 0)

    def broadcast(self, value: Any, src: int = 0) -> Any:
        """`src`'s `value` on every rank (pickled; fine for records, a checkpoint's name, a small model)."""
        if not self.active:
            return value
        box = [value if self.rank == src else None]
        try:
            dist.broadcast_object_list(box, src=src, group=self.control)
        except RuntimeError as exc:
            raise self._lost("a broadcast", exc) from exc
        return box[0]

    def barrier(self, what: str = "a barrier") -> None:
        """Waits for every rank; a rank that does not come within the timeout fails this one,
        naming it (gloo's monitored barrier), instead of hanging."""
        if not self.active:
            return
        try:
            dist.monitored_barrier(
                group=self.control, timeout=datetime.timedelta(seconds=self.timeout), wait_all_ranks=True
            )
        except RuntimeError as exc:
            raise self._lost(what, exc) from exc

    def close(self) -> None:
        if self.active and dist.is_initialized():
            dist.destroy_process_group()


def collective_timeout(environ) -> float:
    value = environ.get(TIMEOUT_ENV)
    if value is None:
        return DEFAULT_TIMEOUT_S
    try:
        seconds = float(value)
    except ValueError:
        raise ValueError(f"Invalid {TIMEOUT_ENV} {value!r}: expected seconds, e.g. 1800") from None
    if seconds <= 0:
        raise ValueError(f"Invalid {TIMEOUT_ENV} {value!r}: must be positive")
    return seconds


def placement(env) -> tuple[int, int, int] | None:
    """(rank, world size, local rank) from torchrun's variables, else one process per host;
    None for a job of one process."""
    environ = env.environ
    if int(environ.get("WORLD_SIZE", "1")) > 1:
        return int(environ["RANK"]), int(environ["WORLD_SIZE"]), int(environ.get("LOCAL_RANK", "0"))
    if len(env.hosts) > 1:
        return env.node_rank, len(env.hosts), 0
    return None


def setup(env, device_for: Callable[[int], torch.device | None] | None = None) -> Group:
    """Joins the job's process group: NCCL when this rank trains on CUDA (`device_for(local
    rank)`, the CPU where it gives none), gloo on the CPU, plus the gloo control group; a job of one
    process gets a group of one, on `device_for(0)`."""
    where = placement(env)
    timeout = collective_timeout(env.environ)
    rank, world, local = where or (0, 1, 0)
    device = (device_for(local) if device_for is not None else None) or torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if where is None:
        return Group(device=device, hosts=tuple(env.hosts), timeout=timeout)
    # torchrun set these for its workers; one process per host finds rank 0 as torchrun would
    os.environ.setdefault("MASTER_ADDR", launcher.master_address(env))
    os.environ.setdefault("MASTER_PORT", launcher.master_port(env))
    backend = "nccl" if device.type == "cuda" else "gloo"
    span = datetime.timedelta(seconds=timeout)
    dist.init_process_group(backend, init_method="env://", rank=rank, world_size=world, timeout=span)
    control = dist.new_group(backend="gloo", timeout=span) if backend != "gloo" else dist.group.WORLD
    log.info("Rank %d of %d (%s, local rank %d) on %s", rank, world, backend, local, env.current_host)
    return Group(rank, world, local, device, tuple(env.hosts), timeout, control)
