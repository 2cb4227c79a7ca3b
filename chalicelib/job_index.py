"""Which job records the scheduled sweeps read: both job stores index them the same way.

Cost grows with active work, not with history (DESIGN.md, "Stores at scale"): the sweeps
(launch queued jobs, reconcile running ones, send due callbacks) read only the records this
module places in a *sweep lane*, and both stores keep the lane on the record's row or item,
recomputed from the record on every write (create, update, backfill), so no write path can
leave it stale:

- `ACTIVE`: the job has not ended (queued for capacity, pending, in progress, stopping);
- `CALLBACK`: an AI Factory job that ended and whose callback still needs a sender: pending
  in the outbox, or not enqueued yet (the state-change handler never ran for it);
- no lane (None): settled history, which no sweep reads again.

DynamoDB keeps the lane in a GSI partition key (`lane`, history in `history#<api>`),
SQLite in an indexed `sweep` column (a partial index over the rows that have one).
"""

from __future__ import annotations

from typing import Any

from contracts.api_names import CALLBACK_API
from contracts.statuses import TERMINAL

ACTIVE = "active"
CALLBACK = "callback"
SWEEP_LANES = (ACTIVE, CALLBACK)
CALLBACK_PENDING = "pending"  # outbox.PENDING


def is_active(record: dict[str, Any]) -> bool:
    return record.get("status") not in TERMINAL


def callback_due_at(record: dict[str, Any]) -> float | None:
    """When the job's callback next needs a sender (epoch seconds; 0 when it has not been
    enqueued yet), or None when it needs none (not an AI Factory job, still running, delivered,
    failed for good, or sent by the at-most-once sender of earlier versions)."""
    if record.get("api") != CALLBACK_API or is_active(record):
        return None
    box = record.get("callback_outbox")
    if not box:
        return None if record.get("callback_claimed") else 0.0
    if box.get("state") != CALLBACK_PENDING:
        return None
    return max(float(box.get("next_attempt_at") or 0), float(box.get("lease_until") or 0))


def sweep_lane(record: dict[str, Any]) -> str | None:
    """The sweep lane the record belongs in, or None once it is settled history."""
    if is_active(record):
        return ACTIVE
    return CALLBACK if callback_due_at(record) is not None else None


def callback_is_due(record: dict[str, Any], now: float) -> bool:
    due = callback_due_at(record)
    return due is not None and due <= now


def newest_first_key(record: dict[str, Any]) -> tuple[str, str]:
    """The order list pages use, newest first: (created_at, job_id), compared descending."""
    return str(record.get("created_at") or ""), str(record["job_id"])
