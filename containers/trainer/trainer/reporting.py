"""Heartbeat, loss history, result and metric lines: what the API reads back.

`progress.json` is the v1.5 monitor payload minus `result`; `losses.json` the loss
history; `result.json` the held-out evaluation the callback carries. Metric lines on
stdout use the names and format of `contracts.metrics`, from which the API builds the
SageMaker metric definitions that scrape them.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from contracts import heartbeat, layout, metrics, timeutil
from trainer.artifacts import ArtifactWriter


def emit_metric(name: str, value: float, stream=None) -> None:
    print(metrics.format_line(name, value), file=stream or sys.stdout, flush=True)


class Reporter:
    """Rank 0 only writes; other ranks get a reporter whose writes do nothing."""

    def __init__(
        self,
        writer: ArtifactWriter | None,
        total_epoch: int = 0,
        attempt: int = 1,
        min_interval: float = 1.0,
        clock=time.monotonic,
    ):
        self.writer = writer
        self.clock = clock
        self.min_interval = min_interval
        self._last = -1e9
        self.losses: list[float] = []
        self.state: dict[str, Any] = heartbeat.initial(total_epoch, attempt)
        self.loss_steps: list[int] = []  # the batch each loss point ends at (contracts.plots.loss_step)
        if writer is not None:
            self.losses = list(writer.get_json(layout.LOSSES, []) or [])
            self.loss_steps = list(writer.get_json(layout.LOSS_STEPS, []) or [])

    @property
    def enabled(self) -> bool:
        return self.writer is not None

    def update(self, force: bool = False, **fields: Any) -> None:
        self.state.update(fields)
        self.state["datetime"] = timeutil.now_str()
        if not self.enabled:
            return
        now = self.clock()
        if force or now - self._last >= self.min_interval:
            self._last = now
            self.writer.put_json(layout.PROGRESS, self.state)

    def due(self) -> bool:
        """Whether an update now would be written (rank 0, and `min_interval` has passed)."""
        return self.enabled and self.clock() - self._last >= self.min_interval

    def add_loss(self, loss: float, step: int | None = None) -> None:
        """`step`: the batch the point ends at, counted over all epochs (the loss plot's x)."""
        self.losses.append(float(loss))
        if step is not None:
            self.loss_steps = self.loss_steps[: len(self.losses) - 1] + [int(step)]
        if self.enabled:
            if step is not None:
                self.writer.put_json(layout.LOSS_STEPS, self.loss_steps)
            self.writer.put_json(layout.LOSSES, self.losses)

    def set_losses(self, losses: list[float]) -> None:
        """Truncates the history on resume so a restored job never shows a loss twice."""
        self.losses = [float(v) for v in losses]
        had_steps, self.loss_steps = bool(self.loss_steps), self.loss_steps[: len(self.losses)]
        if self.enabled:
            if had_steps:  # trainers that record no steps (text) leave no file
                self.writer.put_json(layout.LOSS_STEPS, self.loss_steps)
            self.writer.put_json(layout.LOSSES, self.losses)

    def put_result(self, result: dict[str, Any]) -> None:
        if self.enabled:
            self.writer.put_json(layout.RESULT, result)
