"""One console line per job event for `make run`: queued, started, epoch done, ended (with
the reason), callback delivered or failed.

The local sweep calls `JobEventLog.poll()` every tick; it compares what it sees with what
it saw last time, so it needs no hook in the runner, the trainer or the outbox, and a
restarted server does not replay old history (the first look only remembers).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from chalicelib.job_record import Job
from chalicelib.ports import COMPLETED, FAILED, STOPPED, TERMINAL, Adapters
from chalicelib.services import jobs, outbox
from contracts import layout

log = logging.getLogger("aifactory.jobs.events")
ENDED = {COMPLETED: "finished", FAILED: "failed", STOPPED: "stopped"}


@dataclass
class Seen:
    status: str
    started: bool
    epoch: int
    callback: str | None


def _snapshot(svc: Adapters, job: Job) -> tuple[Job, Seen, dict[str, Any]]:
    if job.status not in TERMINAL:
        job = jobs.refresh(svc, job)
    progress = {}
    if job.status not in TERMINAL:
        progress = svc.artifacts.get_json(layout.job_key(job.job_id, layout.PROGRESS), {}) or {}
    started = job.status in TERMINAL or job.secondary_status not in ("Starting", "Pending", "")
    callback = (outbox.summary(job) or {}).get("status")
    return job, Seen(job.status, started, int(progress.get("epoch") or 0), callback), progress


def _describe(job: Job) -> str:
    return f"{job.api} job {job.job_name if job.api == 'ai_factory' else job.job_id} ({job.task})"


class JobEventLog:
    def __init__(self, emit=print):
        self.emit = emit
        self.seen: dict[str, Seen] | None = None

    def poll(self, svc: Adapters) -> list[str]:
        first = self.seen is None
        seen = self.seen or {}
        lines: list[str] = []
        for record in svc.jobs.list():
            job, now, progress = _snapshot(svc, record)
            before = seen.get(job.job_id)
            seen[job.job_id] = now
            if first:
                continue
            lines.extend(self._changes(job, before, now, progress))
        self.seen = seen
        for line in lines:
            self.emit(line)
        return lines

    @staticmethod
    def _changes(job: Job, before: Seen | None, now: Seen, progress: dict) -> list[str]:
        name = _describe(job)
        lines = []
        if before is None:
            lines.append(f"{name}: queued")
            before = Seen(job.status if job.status not in TERMINAL else "", False, 0, None)
        if now.started and not before.started:
            lines.append(f"{name}: started")
        for epoch in range(max(before.epoch, 1), now.epoch):  # the heartbeat names the epoch running
            lines.append(f"{name}: epoch {epoch}/{progress.get('total_epoch') or '?'} done")
        if now.status in TERMINAL and now.status != before.status:
            reason = (job.failure_reason or "").split("\n\n", 1)[0]
            lines.append(f"{name}: {ENDED[now.status]}" + (f": {reason}" if reason else ""))
        if now.callback != before.callback and now.callback in ("delivered", "failed"):
            box = outbox.summary(job) or {}
            detail = f" after {box.get('attempts')} attempt(s)" + (
                f": {box['last_error']}" if now.callback == "failed" and box.get("last_error") else ""
            )
            lines.append(f"{name}: callback {now.callback}{detail}")
        return lines
