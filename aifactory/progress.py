"""The `--follow` display: a tqdm bar over every batch of the job (epoch, batch, loss,
samples/s and the trainer's own ETA), with the log tail printed above it."""

from __future__ import annotations

import sys
from datetime import timedelta
from typing import IO, Any

from tqdm import tqdm


def eta_text(eta_hr: Any) -> str:
    try:
        hours = float(eta_hr)
    except (TypeError, ValueError):
        return "?"
    if hours < 0:
        return "?"
    return str(timedelta(seconds=round(hours * 3600)))


def monitor_line(body: dict[str, Any]) -> str:
    """A v1.5 heartbeat as one line: `running epoch 2/4 batch 3/8 loss 0.5234 lr 0.01 12.3 samples/s ETA 0:00:40`."""
    status = str(body.get("status", "?"))
    if body.get("phase") == "evaluating":  # the validation pass: every batch is done, ETA unknown
        status += " (evaluating)"
    parts = [status, f"epoch {body.get('epoch', 0)}/{body.get('total_epoch', '?')}"]
    if body.get("total_batch"):
        parts.append(f"batch {body.get('batch', 0)}/{body['total_batch']}")
    return " ".join(parts + metric_parts(body))


def status_line(body: dict[str, Any]) -> str:
    """An AI Factory `/status` body as one line: its SageMaker status, then the trainer's
    `progress` when it reported one: `InProgress step 30/100 loss 0.5234 lr 0.001 ETA 0:01:10`."""
    parts = [str(body.get("status", "?"))]
    progress = body.get("progress") or {}
    if isinstance(progress, dict) and progress.get("step") is not None:
        total = progress.get("total_steps")
        parts.append(f"step {progress['step']}" + (f"/{total}" if total else ""))
        parts += metric_parts({"avg_loss": progress.get("loss", -1), **progress})
    text = " ".join(parts)
    return text + (f": {body['message']}" if body.get("message") else "")


def metric_parts(body: dict[str, Any]) -> list[str]:
    """Loss, learning rate, speed and ETA of a heartbeat; the API's -1 (not known yet) is left out."""
    parts = []
    loss = body.get("avg_loss", -1)
    if isinstance(loss, int | float) and loss >= 0:
        parts.append(f"loss {loss:.4f}")
    lr = body.get("learning_rate", -1)
    if isinstance(lr, int | float) and lr >= 0:
        parts.append(f"lr {lr:.3g}")
    speed = body.get("samples_per_sec", -1)
    if isinstance(speed, int | float) and speed >= 0:
        parts.append(f"{speed:.1f} samples/s")
    if body.get("eta_hr", -1) not in (-1, None):
        parts.append(f"ETA {eta_text(body['eta_hr'])}")
    return parts


class ProgressView:
    """Renders `follow` callbacks: the bar on `bar_file` (stderr), log lines on `log_file` (stdout).

    On a terminal the bar redraws in place; anywhere else (CI logs, pipes) each heartbeat that
    changed is one plain line, so a log file holds the history instead of redraw noise.
    """

    def __init__(self, job: str, bar_file: IO[str] | None = None, log_file: IO[str] | None = None):
        self.job = job
        self.bar_file = bar_file or sys.stderr
        self.log_file = log_file or sys.stdout
        self.interactive = _isatty(self.bar_file)
        self.last_line = ""
        self.bar = None
        if self.interactive:
            self.bar = tqdm(
                total=None,
                file=self.bar_file,
                desc=job,
                unit="batch",
                dynamic_ncols=True,
                mininterval=0.2,
                bar_format="{desc}{postfix}",
            )

    def status(self, body: dict[str, Any]) -> None:
        if "epoch" in body:
            line = monitor_line(body)
        else:  # an AI Factory job: its SageMaker status and the trainer's progress (step, loss, ETA)
            line = status_line(body)
        if self.bar is None:
            if line != self.last_line:
                print(f"{self.job} {line}" if "epoch" not in body else line, file=self.bar_file, flush=True)
            self.last_line = line
            return
        self._draw(body, line)

    def _draw(self, body: dict[str, Any], line: str) -> None:
        assert self.bar is not None
        total_epoch = int(body.get("total_epoch") or 0)
        total_batch = int(body.get("total_batch") or 0)
        epoch, batch = int(body.get("epoch") or 0), int(body.get("batch") or 0)
        if "epoch" not in body:
            self.bar.set_description_str(f"{self.job} {line}", refresh=False)
        else:
            self.bar.set_description_str(
                f"{body.get('status', '?')} epoch {epoch}/{total_epoch or '?'}", refresh=False
            )
            if total_epoch and total_batch:
                self.bar.bar_format = "{desc} |{bar}| {percentage:3.0f}%{postfix}"
                self.bar.total = total_epoch * total_batch
                self.bar.n = min(self.bar.total, max(0, (max(epoch, 1) - 1) * total_batch + batch))
            batch_part = [f"batch {batch}/{total_batch}"] if total_batch else []
            self.bar.set_postfix_str(" ".join(batch_part + metric_parts(body)), refresh=False)
        self.bar.refresh()

    def lines(self, lines: list[str]) -> None:
        for line in lines:
            if self.bar is not None:
                self.bar.write(line.rstrip("\n"), file=self.log_file)
            else:
                print(line.rstrip("\n"), file=self.log_file, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
