"""One background thread for an epoch's slow side work: plots, checkpoint files, pruning.

Rendering JPEG plots and serialising a checkpoint take a noticeable share of a small job's
epoch; none of it is needed by the next epoch, so the loop hands it over and trains on.
Whatever is handed over must already be a snapshot (CPU copies of the weights and the
optimizer state, copies of lists), because the next step changes the live objects.

Work runs in submission order on a single thread, so checkpoint N is complete before N+1 is
written and pruning sees them in order. `drain()` waits for everything and re-raises the
first failure; leaving the `with` block drains, so nothing is lost when the job ends, fails
or stops, and the final status is written after the last file.
"""

from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor

import torch

log = logging.getLogger(__name__)


class BackgroundWork:
    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="epoch-io")
        self._pending: list[Future] = []

    def submit(self, fn, /, *args, **kwargs) -> None:
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
                except Exception:  # noqa: BLE001
                    log.exception("background work failed while the job was failing")
        finally:
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
