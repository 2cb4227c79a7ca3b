"""The job-state-change handler: SageMaker Training Job State Change (EventBridge) on AWS,
the runner's report on the local platform.

It settles the job record and, once the job is terminal, runs what the job's API surface
registered for its jobs' end (`on_job_end`): the AI Factory surface puts the callback in the
outbox (`chalicelib.services.outbox`) and tries it once: for every terminal state, so a job
that died without a word (capacity error, killed container) is still reported, and at least
once, so a sender that dies mid-attempt loses nothing. This handler names no surface.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from chalicelib.ports import TERMINAL, Adapters
from chalicelib.services import jobs, outbox

log = logging.getLogger("aifactory.events")
SWEEP_BUDGET_S = 600.0

# What each API surface does when one of its jobs ends: (adapters, the settled record, the
# caller's budget in seconds or None). Filled by the surfaces, at wiring time.
EndHook = Callable[[Adapters, Any, float | None], object]
_on_end: dict[str, EndHook] = {}


def on_job_end(api: str, hook: EndHook) -> None:
    """Registers what `api`'s jobs do once terminal; a surface registers one (again: replaced)."""
    _on_end[api] = hook


def on_training_state_change(
    svc: Adapters, training_job_name: str, status: str, budget_s: float | None = None
) -> None:
    """`budget_s`: the seconds the caller may spend (a Lambda's remaining time, less a margin);
    an attempt that would not fit is left to the scheduled sender."""
    job = svc.jobs.get_by_name(jobs.job_name_of(training_job_name))
    if job is None:
        log.info("state change for unknown training job %s (%s): ignored", training_job_name, status)
        return
    if jobs.current_attempt(job)["training_job_name"] != training_job_name:
        return  # an older attempt's late event
    job = jobs.refresh(svc, job)
    hook = _on_end.get(job.api)
    if job.status in TERMINAL and hook is not None:
        hook(svc, job, budget_s)


def deliver_pending(svc: Adapters, budget_s: float = SWEEP_BUDGET_S) -> int:
    """Enqueues callbacks nobody enqueued (the runner died, the API restarted) and sends
    every one that is due; returns the attempts made. The scheduled handler on AWS."""
    return outbox.run_due(svc, budget_s)


def launch_queued(svc: Adapters) -> int:
    """Starts the jobs that wait for capacity (`jobs.launch_queued`): the scheduled handler on
    AWS (`app.launch_queued_jobs`), the sweep on the local stage."""
    return jobs.launch_queued(svc)
