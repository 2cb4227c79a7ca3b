"""What a v1.5 job holds in the artifact store, and giving back what a finished job no longer needs.

A checkpoint is its weights (`model.safetensors`) plus small JSON; the trainer keeps the
weights of the newest `max_num_checkpoints` and of the best, and `train_state.pt` (optimizer
momentum, about the weights' size again) only in the newest, the resume point
(trainer.vision.checkpoint). A finished job keeps that train state so that a restore with a
larger `num_epochs_to_finish` continues it exactly.

`reclaim` (POST /api/v1.5.0/train/<id>/reclaim) is the user's choice to give that up: on a
finished job it removes the weights of every checkpoint but the best and the deployed ones,
and every train state. The job's metrics, plots, losses and best model stay; a restore
afterwards resumes from the newest checkpoint that still has weights, with a fresh optimizer.
`AIFACTORY_DISK_BUDGET_GB` makes the local sweep do the same, oldest finished job first,
while the artifact store holds more than the budget (`enforce_budget`).
"""

from __future__ import annotations

import logging
from typing import Any

from chalicelib.errors import Conflict
from chalicelib.job_record import Job
from chalicelib.ports import COMPLETED, Adapters
from chalicelib.services import jobs
from contracts import layout
from contracts import metrics as metric_names
from contracts.api_names import V15 as API

log = logging.getLogger(__name__)


def sizes(svc: Adapters, job_id: str) -> dict[str, int]:
    """Bytes of every object under the job's prefix, by key relative to the store's root."""
    return dict(svc.artifacts.list_sizes(layout.job_prefix(job_id)))


def footprint(found: dict[str, int]) -> dict[str, Any]:
    """`disk_bytes` (all the job holds) and `checkpoint_bytes` (by epoch) from `sizes`."""
    by_epoch: dict[int, int] = {}
    for key, size in found.items():
        parsed = layout.parse_epoch_key(key)
        if parsed:
            by_epoch[parsed[0]] = by_epoch.get(parsed[0], 0) + size
    return {"disk_bytes": sum(found.values()), "checkpoint_bytes": by_epoch}


def _deployed_epochs(svc: Adapters, job_id: str) -> set[int]:
    if svc.hosting is None:
        return set()
    return {int(d.epoch) for d in svc.hosting.list() if d.job_id == job_id}


def reclaimable(svc: Adapters, job: jobs.Record, found: dict[str, int]) -> list[str]:
    """The keys `reclaim` removes: weights of all but the best and deployed checkpoints, every train state."""
    job = Job.from_item(job)
    job_id = job.job_id
    scores = {}
    for key in found:
        parsed = layout.parse_epoch_key(key)
        if parsed and parsed[1] == layout.METRICS_JSON:
            record = svc.artifacts.get_json(key) or {}
            scores[parsed[0]] = metric_names.headline(job.task, record.get("metrics") or {})
    keep = {metric_names.best_epoch(scores)} | _deployed_epochs(svc, job_id)
    doomed = []
    for key in found:
        parsed = layout.parse_epoch_key(key)
        if parsed and (
            parsed[1] == layout.TRAIN_STATE or (parsed[1] == layout.WEIGHTS and parsed[0] not in keep)
        ):
            doomed.append(key)
    return sorted(doomed)


def reclaim(svc: Adapters, job_id: str) -> dict[str, Any]:
    """Removes what a finished job no longer needs (module doc); 409 for a job that is not finished."""
    job = jobs.get(svc, job_id, API)
    if job.status != COMPLETED:
        raise Conflict("Only a finished job's space is reclaimed: a stopped or failed one may be restored.")
    return _reclaim(svc, job)


def _reclaim(svc: Adapters, job: Job) -> dict[str, Any]:
    found = sizes(svc, job.job_id)
    doomed = reclaimable(svc, job, found)
    for key in doomed:
        svc.artifacts.delete(key)
    freed = sum(found[k] for k in doomed)
    log.info("reclaimed %d bytes of job %s (%d files)", freed, job.job_id, len(doomed))
    return {
        "result": "OK",
        "freed_bytes": freed,
        "disk_bytes": sum(found.values()) - freed,
        "removed": [
            layout.parse_epoch_key(k)[1] + f" of epoch {layout.parse_epoch_key(k)[0]}" for k in doomed
        ],
    }


def enforce_budget(svc: Adapters, budget_bytes: int) -> list[str]:
    """Reclaims finished v1.5 jobs, oldest first, while all v1.5 jobs together hold more than
    `budget_bytes`; returns the job ids it reclaimed. A budget of 0 or less does nothing."""
    if budget_bytes <= 0:
        return []
    records = sorted(svc.jobs.list(API), key=lambda j: j.created_at or "")
    held = {j.job_id: sum(sizes(svc, j.job_id).values()) for j in records}
    total = sum(held.values())
    reclaimed = []
    for job in records:
        if total <= budget_bytes:
            break
        if job.status != COMPLETED:
            continue
        freed = _reclaim(svc, job)["freed_bytes"]
        if freed:
            total -= freed
            reclaimed.append(job.job_id)
    if total > budget_bytes:
        log.warning(
            "v1.5 jobs hold %.2f GB, over AIFACTORY_DISK_BUDGET_GB %.2f, after reclaiming every finished job; "
            "clear jobs (DELETE /api/v1.5.0/train/<id>) to free more",
            total / 1e9,
            budget_bytes / 1e9,
        )
    return reclaimed
