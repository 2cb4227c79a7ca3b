"""Following a job to its end: heartbeat polling plus the log tail, as SageMaker's
`wait(logs=True)` does, reported through callbacks so the CLI and scripts render it
their own way.

v1.5 jobs have a heartbeat (`GET .../train/<job_id>`: epoch, batch, loss, speed, ETA);
AI Factory jobs have their SageMaker status and the trainer's `progress` (`POST /status`:
step, total_steps, loss, learning_rate, samples_per_sec, eta_hr). Both have logs, when
the server has the logs routes; without them following still works, minus the lines.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aifactory import errors
from aifactory.client import Client, is_v15_job

V15_TERMINAL = ("finished", "exception", "stopped")
AI_FACTORY_TERMINAL = ("Completed", "Failed", "Stopped")
LOG_PAGE = 500


@dataclass
class Outcome:
    job: str
    status: str
    ok: bool
    reason: str = ""
    last: dict[str, Any] = field(default_factory=dict)
    log_lines: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "job": self.job,
            "status": self.status,
            "ok": self.ok,
            "reason": self.reason,
            "log_lines": self.log_lines,
            "last": self.last,
        }


def failure_reason(job: str, body: dict[str, Any]) -> str:
    """One line saying why a job did not finish, from a v1.5 monitor body or an AI Factory status."""
    status = body.get("status", "")
    if status == "exception":
        exc = body.get("exception") or {}
        detail = f"{exc.get('code', 'E00')} {exc.get('type', 'Error')}: {exc.get('message', '')}".strip()
        return f"job {job} failed: {detail}"
    if status in ("stopped", "Stopped"):
        return f"job {job} was stopped before it finished"
    if status == "Failed":
        return f"job {job} failed: {body.get('message') or 'no reason given'}"
    return f"job {job} ended with status {status}"


class LogTail:
    """Reads a job's log from an offset on, page by page; remembers where it stopped."""

    def __init__(self, client: Client, job: str, offset: int = 0, metrics: bool = False):
        self.client, self.job, self.offset = client, job, offset
        self.metrics = metrics  # also the `#metric` lines (people read the log without them)
        self.available = True  # False once the server says it has no logs route
        self.complete = False

    def poll(self) -> list[str]:
        if not self.available or self.complete:
            return []
        try:
            page = self.client.logs(self.job, self.offset, LOG_PAGE, self.metrics)
        except errors.RouteNotFound:
            self.available = False
            return []
        except errors.NotFound:
            return []  # no log yet (job still queued)
        self.offset = int(page.get("next_offset", self.offset))
        self.complete = bool(page.get("complete"))
        return list(page.get("lines") or [])


def follow(
    client: Client,
    job: str,
    on_status: Callable[[dict[str, Any]], None] | None = None,
    on_lines: Callable[[list[str]], None] | None = None,
    poll_seconds: float = 1.0,
    drain_seconds: float = 10.0,
    logs: bool = True,
    metrics: bool = False,
) -> Outcome:
    """Polls until the job ends; returns how it ended. Errors of the API propagate. The log
    leaves out the `#metric` lines unless `metrics`."""
    v15 = is_v15_job(job)
    tail = LogTail(client, job, metrics=metrics) if logs else None
    count = 0

    def pump() -> bool:
        nonlocal count
        lines = tail.poll() if tail else []
        if lines:
            count += len(lines)
            if on_lines:
                on_lines(lines)
        return len(lines) >= LOG_PAGE

    while True:
        body = client.monitor(job) if v15 else client.status(job)
        if on_status:
            on_status(body)
        more = pump()
        status = body.get("status", "")
        if status in (V15_TERMINAL if v15 else AI_FACTORY_TERMINAL):
            break
        if not more:
            time.sleep(poll_seconds)
    deadline = time.monotonic() + drain_seconds
    while tail and tail.available and not tail.complete and time.monotonic() < deadline:
        if not pump():
            time.sleep(min(poll_seconds, 0.5))
    ok = status in ("finished", "Completed")
    return Outcome(job, status, ok, "" if ok else failure_reason(job, body), body, count)
