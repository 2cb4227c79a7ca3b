"""The job-state-change handler: SageMaker Training Job State Change (EventBridge) on AWS,
the runner's report on the local platform.

It settles the job record and, for AI Factory jobs, sends the callback once per job:
for every terminal state, so a job that died without a word (capacity error, killed
container) is still reported.
"""

from __future__ import annotations

import logging

from callbacks import delivery, payload
from chalicelib import settings
from chalicelib.ports import TERMINAL, ConflictError, Services
from chalicelib.services import jobs
from contracts import layout

log = logging.getLogger("aifactory.events")


def on_training_state_change(svc: Services, training_job_name: str, status: str) -> None:
    job = svc.jobs.get_by_name(jobs.job_name_of(training_job_name))
    if job is None:
        log.info("state change for unknown training job %s (%s): ignored", training_job_name, status)
        return
    if jobs.current_attempt(job)["training_job_name"] != training_job_name:
        return  # an older attempt's late event
    job = jobs.refresh(svc, job)
    if job["status"] in TERMINAL and job["api"] == "ai_factory":
        send_callback(svc, job)


def deliver_pending(svc: Services) -> None:
    """Sends callbacks nobody sent (the runner died, the API restarted): nothing is lost."""
    for job in svc.jobs.list("ai_factory"):
        if not job.get("callback_claimed"):
            job = jobs.refresh(svc, job)
            if job["status"] in TERMINAL:
                send_callback(svc, job)


def send_callback(svc: Services, job: dict) -> None:
    """Claims the callback with a conditional write first, so it goes out once per job."""
    try:
        job = svc.jobs.update(
            job["job_id"], {"callback_claimed": job["status"]}, expect={"callback_claimed": None}
        )
    except ConflictError:
        return
    secret = svc.secrets.get(job["secret_ref"]) if job.get("secret_ref") else {}
    result = svc.artifacts.get_json(layout.job_key(job["job_id"], layout.RESULT), {}) or {}
    config = settings.current()
    body = payload.build(job, result, job.get("model_url"))
    outcome = delivery.deliver(
        job["callback"]["url"],
        body,
        secret.get("callback_headers") or {},
        idempotency_key=f"{job['job_name']}:{job['status']}",
        signing_key=config.callback_signing_key,
        attempts=config.callback_attempts,
        backoff=config.callback_backoff_seconds,
    )
    svc.jobs.update(
        job["job_id"],
        {
            "callback_sent": outcome.delivered,
            "callback_attempts": outcome.attempts,
            "callback_error": outcome.error,
        },
    )
