"""The callback outbox: every AI Factory job's end is reported at least once.

A job that reaches a terminal state is *enqueued* on its own record (a conditional write,
so once per job): `callback.state` becomes `pending` with the status it reports. A sender
*claims* one attempt with a lease (a conditional write that counts the attempt and sets
`lease_until`), makes one HTTP attempt (`callbacks.delivery.deliver_once`) and records the
outcome. A sender that dies after its claim (kill -9, a Lambda timeout) loses nothing: the
lease expires and the next sweep claims the callback again. Failed attempts wait on a
backoff schedule that reaches hours (`AIFACTORY_CALLBACK_BACKOFF_SECONDS` doubling up to
`AIFACTORY_CALLBACK_MAX_DELAY_SECONDS`, `AIFACTORY_CALLBACK_ATTEMPTS` in all: about two and
a half days by default, like Stripe's three), a receiver's Retry-After is honoured, and a
callback that can never succeed (a refused URL, a 4xx) or ran out of attempts is `failed`,
which `/status` and `check_trained_job` show.

Receivers see the same `Idempotency-Key: <job_name>:<status>` on every attempt, so a
redelivery after a lost reply can be recognised.

Who sends: on the local stage the runner tries once when the trainer exits, and `Outbox`
(a small thread pool in `make run`) sends whatever is due, never blocking the platform
sweep; on AWS the state-change handler tries once within its time budget and a scheduled
handler (`app.retry_callbacks`) sends what is due.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from callbacks import delivery, payload
from chalicelib.job_record import Job
from chalicelib.ports import TERMINAL, Adapters, ConflictError
from chalicelib.services import jobs, model_links
from chalicelib.settings import Settings
from contracts import layout, timeutil
from contracts.api_names import CALLBACK_API

log = logging.getLogger("aifactory.outbox")
PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
MIN_ATTEMPT_S = 1.0  # an attempt is not started with less time than this left in a budget


def _fit(timeout: float, left_s: float) -> float:
    """An attempt's timeout inside `left_s` seconds: connect and read each get it once."""
    return max(0.25, min(timeout, (left_s - 0.5) / 2))


# --- the schedule -------------------------------------------------------------------------
def retry_delay(config: Settings, failed_attempts: int, retry_after: float | None = None) -> float:
    """Seconds to wait after the `failed_attempts`-th failure: the backoff doubling per
    failure up to the cap; a receiver's Retry-After lengthens it (never past the cap)."""
    cap = config.callback_max_delay_seconds
    delay = min(config.callback_backoff_seconds * 2 ** max(0, failed_attempts - 1), cap)
    if retry_after:
        delay = max(delay, min(retry_after, cap))
    return delay


def schedule(config: Settings) -> list[float]:
    """Every wait of a callback that never succeeds (for docs and tests)."""
    return [retry_delay(config, n) for n in range(1, config.callback_attempts)]


def lease_seconds(config: Settings) -> float:
    return max(config.callback_lease_seconds, 2 * config.callback_timeout_seconds + 1.0)


# --- the record ---------------------------------------------------------------------------
def summary(job: jobs.Record) -> dict[str, Any] | None:
    """What `/status` and `check_trained_job` show about a job's callback."""
    box = Job.from_item(job).callback_outbox
    if not box:
        return None
    shown = {"status": box["state"], "attempts": box["attempts"]}
    if box.get("last_error"):
        shown["last_error"] = box["last_error"]
    if box["state"] == PENDING and box.get("next_attempt_at"):
        shown["next_attempt_at"] = timeutil.from_epoch(box["next_attempt_at"])
    if box.get("delivered_at"):
        shown["delivered_at"] = timeutil.from_epoch(box["delivered_at"])
    return shown


def enqueue(svc: Adapters, job: jobs.Record, now: float | None = None) -> Job:
    """Marks a terminal AI Factory job's callback pending, once per job."""
    job = Job.from_item(job)
    if job.api != CALLBACK_API or job.status not in TERMINAL or job.callback_outbox:
        return job
    if job.extra.get("callback_claimed"):  # sent by the at-most-once sender of earlier versions
        return job
    box = {
        "state": PENDING,
        "status": job.status,
        "attempts": 0,
        "next_attempt_at": time.time() if now is None else now,
        "lease_until": None,
        "lease_owner": None,
        "last_error": "",
        "delivered_at": None,
    }
    try:
        return svc.jobs.update(job.job_id, {"callback_outbox": box}, expect={"callback_outbox": None})
    except ConflictError:
        return svc.jobs.get(job.job_id) or job


def is_due(job: jobs.Record, now: float) -> bool:
    box = Job.from_item(job).callback_outbox
    if not box or box["state"] != PENDING:
        return False
    lease = box.get("lease_until")
    return box["next_attempt_at"] <= now and (lease is None or lease <= now)


def claim(svc: Adapters, job: jobs.Record, now: float | None = None) -> tuple[Job, str] | None:
    """Takes the next attempt of a due callback with a lease; None when another sender holds
    it, it is not due, or it has just run out of attempts (then it is marked failed)."""
    job = Job.from_item(job)
    now = time.time() if now is None else now
    box = job.callback_outbox
    if not is_due(job, now):
        return None
    expect = {"callback_outbox": box}  # unchanged since we read it: a compare-and-swap
    if box["attempts"] >= svc.settings.callback_attempts:
        error = box.get("last_error") or "no outcome was recorded (the sender stopped mid-attempt)"
        _write(svc, job, {**box, "state": FAILED, "lease_until": None, "last_error": error}, expect)
        log.warning("callback of %s failed for good after %d attempts", job.job_name, box["attempts"])
        return None
    token = uuid.uuid4().hex
    claimed = {
        **box,
        "attempts": box["attempts"] + 1,
        "lease_until": now + lease_seconds(svc.settings),
        "lease_owner": token,
    }
    if box.get("lease_until") is not None:  # the last sender never came back
        claimed["last_error"] = (
            box.get("last_error") or "no outcome was recorded (the sender stopped mid-attempt)"
        )
    job = _write(svc, job, claimed, expect)
    return (job, token) if job is not None else None


def _write(svc: Adapters, job: Job, box: dict, expect: dict) -> Job | None:
    try:
        return svc.jobs.update(job.job_id, {"callback_outbox": box}, expect=expect)
    except ConflictError:
        return None


def attempt(svc: Adapters, job: jobs.Record, token: str, timeout: float | None = None) -> Job | None:
    """One HTTP attempt of a claimed callback, and its outcome on the record. Never raises."""
    job = Job.from_item(job)
    box = job.callback_outbox
    config = svc.settings
    try:
        secret = svc.secrets.get(job.secret_ref) if job.secret_ref else {}
        result = svc.artifacts.get_json(layout.job_key(job.job_id, layout.RESULT), {}) or {}
        link = model_links.signed_url(config, job.model_url, job.job_name)
        body = payload.build({**job, "status": box["status"]}, result, link)
        outcome = delivery.deliver_once(
            job.callback["url"],
            body,
            (secret or {}).get("callback_headers") or {},
            idempotency_key=f"{job.job_name}:{box['status']}",
            signing_key=config.callback_signing_key,
            timeout=timeout or config.callback_timeout_seconds,
            allow_private=config.allow_private_urls,
        )
    except Exception as exc:
        log.exception("callback of %s could not be attempted", job.job_name)
        outcome = delivery.DeliveryResult(False, 1, None, f"{type(exc).__name__}: {exc}", retryable=True)
    return record(svc, job, token, outcome)


def record(svc: Adapters, job: jobs.Record, token: str, outcome, now: float | None = None) -> Job | None:
    job = Job.from_item(job)
    now = time.time() if now is None else now
    box = dict(job.callback_outbox)
    box.update(lease_until=None, lease_owner=None)
    if outcome.delivered:
        box.update(state=DELIVERED, delivered_at=now, last_error="")
    else:
        box["last_error"] = outcome.error or (f"HTTP {outcome.status}" if outcome.status else "failed")
        if outcome.retryable and box["attempts"] < svc.settings.callback_attempts:
            box["next_attempt_at"] = now + retry_delay(svc.settings, box["attempts"], outcome.retry_after)
        else:
            box["state"] = FAILED
            log.warning("callback of %s failed: %s", job.job_name, box["last_error"])
    current = svc.jobs.get(job.job_id)
    if current is None or (current.callback_outbox or {}).get("lease_owner") != token:
        return None  # our lease expired and another sender took over: its outcome counts
    return _write(svc, job, box, {"callback_outbox": current.callback_outbox})


# --- senders ------------------------------------------------------------------------------
def send_now(svc: Adapters, job: jobs.Record, budget_s: float | None = None) -> Job | None:
    """Enqueue a job that just ended and try its callback once (the state-change handler)."""
    job = enqueue(svc, job)
    timeout = svc.settings.callback_timeout_seconds
    if budget_s is not None:
        if budget_s < MIN_ATTEMPT_S:
            return job  # the scheduled sender will try
        timeout = _fit(timeout, budget_s)
    claimed = claim(svc, job)
    if claimed is None:
        return job
    return attempt(svc, *claimed, timeout=timeout)


def pending_jobs(svc: Adapters, now: float | None = None) -> list[Job]:
    """AI Factory jobs whose callback is pending: the running ones are refreshed from the
    platform first (one that ended without a state-change event is enqueued here), and those
    that ended are the store's due callbacks (one never enqueued is enqueued here). Both come
    from the store's sweep index, so the cost follows active work, not the table's size."""
    now = time.time() if now is None else now
    found: dict[str, Job] = {}
    candidates = [job for job in svc.jobs.list_active() if job.api == CALLBACK_API]
    for job in [*candidates, *svc.jobs.list_due_callbacks(now)]:
        if job.job_id in found:
            continue
        box = job.callback_outbox
        if box and box["state"] != PENDING:
            continue
        if not box:
            if job.extra.get("callback_claimed"):
                continue
            try:
                job = enqueue(svc, jobs.refresh(svc, job))
            except Exception:
                log.exception("could not refresh %s", job.job_name)
                continue
        if job.callback_outbox:
            found[job.job_id] = job
    return list(found.values())


def run_due(svc: Adapters, budget_s: float, workers: int | None = None) -> int:
    """Sends every due callback within `budget_s` seconds (the scheduled Lambda); returns how
    many attempts were made. Attempts run on a small pool; none starts without time to finish."""
    deadline = time.monotonic() + budget_s
    workers = workers or svc.settings.callback_workers
    made = 0
    with ThreadPoolExecutor(workers) as pool:
        futures = []
        for job in pending_jobs(svc):
            left = deadline - time.monotonic()
            if left < MIN_ATTEMPT_S:
                break
            claimed = claim(svc, job)
            if claimed is None:
                continue
            timeout = _fit(svc.settings.callback_timeout_seconds, left)
            futures.append(pool.submit(attempt, svc, *claimed, timeout))
            made += 1
        for future in futures:
            future.result()
    return made


class Outbox:
    """The local stage's sender: `submit_due()` (called by the sweep) claims due callbacks and
    hands them to a thread pool, so a slow receiver holds one worker, not the sweep or the
    other callbacks."""

    def __init__(self, services: Callable[[], Adapters], workers: int | None = None):
        self._services = services
        self._pool = ThreadPoolExecutor(
            workers or services().settings.callback_workers, thread_name_prefix="callback"
        )
        self._in_flight: set[str] = set()
        self._lock = threading.Lock()

    def submit_due(self) -> int:
        svc = self._services()
        submitted = 0
        for job in pending_jobs(svc):
            now = time.time()
            with self._lock:
                if job.job_id in self._in_flight or not is_due(job, now):
                    continue
                self._in_flight.add(job.job_id)
            try:
                claimed = claim(svc, job, now)
            except Exception:
                self._done(job.job_id)
                raise
            if claimed is None:
                self._done(job.job_id)
                continue
            self._pool.submit(self._attempt, svc, *claimed)
            submitted += 1
        return submitted

    def _attempt(self, svc: Adapters, job: dict, token: str) -> None:
        try:
            attempt(svc, job, token)
        finally:
            self._done(job.job_id)

    def _done(self, job_id: str) -> None:
        with self._lock:
            self._in_flight.discard(job_id)

    def close(self, wait: bool = False) -> None:
        self._pool.shutdown(wait=wait, cancel_futures=True)


__all__ = [
    "Outbox",
    "attempt",
    "claim",
    "enqueue",
    "record",
    "retry_delay",
    "run_due",
    "schedule",
    "send_now",
    "summary",
]
