"""An epoch's side work (checkpoint files, pruning, warming imports), beside training where
that is free.

Serialising a checkpoint takes a noticeable share of a small job's epoch and the next epoch
does not need it, so on a GPU, or wherever a core is left over after the model's threads,
the loop hands it to one background thread and trains on. Where the model's threads already
use every core (CPU training; torch takes one thread per core), a background thread can only
take a core from them: every parallel op then waits for its slowest thread, and on the 2-core
benchmark machine an epoch with a checkpoint being written beside it took 0.5 s longer
for 0.12 s of writing (docs/benchmarks.md). There the work runs in the caller's thread
instead, between epochs.

Whatever is handed over must already be a snapshot (CPU copies of the weights and the
optimizer state, copies of lists), because the next step changes the live objects.

Work runs in submission order on a single thread, so checkpoint N is complete before N+1 is
written and pruning sees them in order. `drain()` waits for everything and re-raises the
first failure; leaving the `with` block drains, so nothing is lost when the job ends, fails
or stops, and the final status is written after the last file. Inline work raises at once.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import Future, ThreadPoolExecutor

import torch

log = logging.getLogger(__name__)


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def has_spare_core(device: torch.device, cpus: int | None = None, threads: int | None = None) -> bool:
    """Whether side work can run beside training without taking a core from it."""
    if device.type == "cuda":
        return True
    cpus = usable_cpus() if cpus is None else cpus
    threads = torch.get_num_threads() if threads is None else threads
    return cpus > threads


class BackgroundWork:
    def __init__(self, inline: bool = False) -> None:
        self._pool = None if inline else ThreadPoolExecutor(max_workers=1, thread_name_prefix="epoch-io")
        self._pending: list[Future] = []

    @property
    def inline(self) -> bool:
        return self._pool is None

    def frozen(self, value):
        """What to hand to `submit` for `value`: a snapshot for the background thread; inline
        work runs before the next step, so it reads the live objects without copying them."""
        return value if self.inline else snapshot(value)

    def frozen_weights(self, model: torch.nn.Module):
        """`model` for `write_checkpoint`, as `frozen` decides."""
        return model if self.inline else WeightsSnapshot(model)

    @classmethod
    def for_device(cls, device: torch.device) -> BackgroundWork:
        return cls(inline=not has_spare_core(device))

    def submit(self, fn, /, *args, **kwargs) -> None:
        if self._pool is None:
            fn(*args, **kwargs)
            return
        self._pending = [f for f in self._pending if not f.done() or f.exception() is not None]
        self._pending.append(self._pool.submit(fn, *args, **kwargs))

    def drain(self) -> None:
        """Waits for all submitted work; raises the first error any of it raised."""
        pending, self._pending = self._pending, []
        first = None
        for future in pending:
            exc = future.exception()
            if exc is not None and first is None:
                first = exc
        if first is not None:
            raise first

    def __enter__(self) -> BackgroundWork:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self.drain()
            else:  # the job already failed: finish the files, report only the first error
                try:
                    self.drain()
                except Exception:
                    log.exception("background work failed while the job was failing")
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)


def snapshot(value):
    """A copy of `value` whose tensors are CPU clones: safe to serialise while training goes on."""
    if torch.is_tensor(value):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, dict):
        return {k: snapshot(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(snapshot(v) for v in value)
    return value


class WeightsSnapshot:
    """The model's state dict as it is now; stands in for the model where only `state_dict()` is read."""

    def __init__(self, model: torch.nn.Module):
        self._state = {k: v.contiguous() for k, v in snapshot(model.state_dict()).items()}

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self._state
