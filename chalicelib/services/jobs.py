"""Job lifecycle on the ports: launch, refresh, stop, restore, clear.

A job is one record plus one or more attempts (SageMaker training jobs). Launching
writes the secret, job.json and the record before asking the platform; if any step
fails everything already written is removed, in reverse order and each step on its own (one
removal that fails, e.g. on a full disk, must not keep the others from running), so a
rejected request leaves nothing. On a full disk the failing step raises `StorageFull` (507).

Reads refresh a record from the platform; that write back only saves the next read some
work, so on a full disk the read answers the refreshed job without saving it.

When the platform has no capacity now (SageMaker's ResourceLimitExceeded: a `CapacityError`)
the job is accepted and waits in a queue on its own record (`queued_request`): it stays
InProgress (v1.5 `initializing`) with the secondary status `WaitingForCapacity` and the
platform's reason, and `launch_queued` (the scheduled handler on AWS, the sweep locally)
starts it once the platform takes it. A job SageMaker accepted and then failed for capacity
(`InsufficientCapacityError`, "Unable to provision requested ML compute capacity") is not a
failed job either: `refresh` queues a new attempt of the same request (it resumes from the
job's checkpoints). The first try again is the next sweep's; later ones back off
(`AIFACTORY_CAPACITY_BACKOFF_SECONDS`, doubling, at most 30 min apart), and a job that has waited `AIFACTORY_CAPACITY_MAX_WAIT_SECONDS` in all fails
with a reason that says so and names the platform's last words.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import time
import uuid
from collections.abc import Mapping
from typing import Any

from chalicelib import stage_names, tenancy
from chalicelib.errors import Conflict, NotFound, QuotaExceeded, StorageFull
from chalicelib.job_record import Job
from chalicelib.ports import (
    FAILED,
    IN_PROGRESS,
    STOPPED,
    TERMINAL,
    Adapters,
    CapacityError,
    ConflictError,
    TrainingRequest,
)
from chalicelib.settings import Settings
from contracts import layout, timeutil
from contracts.job_config import FETCH, JobConfig

log = logging.getLogger("aifactory.jobs")
_ATTEMPT_SUFFIX = re.compile(r"^(?P<name>.+)-r(?P<n>\d+)$")
# A job's capacity options live in its `resource`, spelled as CreateTrainingJob spells them.
SPOT_KEY = "EnableManagedSpotTraining"
MAX_WAIT_KEY = "MaxWaitTimeInSeconds"
KEEP_ALIVE_KEY = "KeepAlivePeriodInSeconds"
WAITING_FOR_CAPACITY = "WaitingForCapacity"  # secondary status of a job in the capacity queue
Record = Mapping[str, Any]
"""What the functions below take: a `Job`, or a record's fields (`Job.from_item` makes one)."""
BILLABLE_REFRESH_S = 30  # a running job's billable seconds are written back at most this often


def new_ids(prefix: str, stage: str) -> tuple[str, str]:
    """v1.5 job id `YYYYmmddHHMMSS-<uuid4>` and a SageMaker-valid job name that carries the
    stage on AWS (`v15-dev-...`: chalicelib.stage_names): `stage`, the settings' (AIFACTORY_STAGE)."""
    now = timeutil.now()
    unique = uuid.uuid4()
    named = stage_names.job_name_prefix(prefix, stage)
    return f"{now:%Y%m%d%H%M%S}-{unique}", f"{named}-{now:%Y%m%d-%H%M%S}-{unique.hex[:8]}"


def artifact_key(job_id: str) -> str:
    return layout.job_prefix(job_id)


def attempt_name(job_name: str, attempt: int) -> str:
    return job_name if attempt == 1 else f"{job_name}-r{attempt}"


def job_name_of(training_job_name: str) -> str:
    match = _ATTEMPT_SUFFIX.match(training_job_name)
    return match.group("name") if match else training_job_name


def current_attempt(job: Record) -> dict[str, Any]:
    return Job.from_item(job).attempts[-1]


def read_config(svc: Adapters, job_id: str) -> JobConfig | None:
    """The job's job.json (None when it has none: a launch that never got that far)."""
    raw = svc.artifacts.get_json(layout.job_key(job_id, layout.JOB_FILE))
    return None if raw is None else JobConfig.from_dict(raw)


def write_config(svc: Adapters, config: JobConfig) -> None:
    svc.artifacts.put_json(layout.job_key(config.job_id, layout.JOB_FILE), config.to_dict())


def _next_attempt_config(svc: Adapters, job_id: str, attempt: int) -> None:
    """job.json names the attempt the trainer runs as: its heartbeats carry it."""
    config = read_config(svc, job_id)
    if config is not None:
        write_config(svc, dataclasses.replace(config, attempt=attempt))


def launch(
    svc: Adapters,
    record: Mapping[str, Any],
    job_config: JobConfig,
    secret: dict[str, Any] | None,
    request: TrainingRequest,
) -> Job:
    record = Job.from_item(record)
    job_id = record.job_id
    check_quotas(svc, record)  # before anything is written
    key = artifact_key(job_id)
    secret_ref = None
    created = False
    try:
        if secret:
            secret_ref = svc.secrets.put(job_id, secret)
            record = record.with_changes({"secret_ref": secret_ref})
            if job_config.data.type == FETCH:  # the trainer gets the reference, never the headers
                job_config = dataclasses.replace(
                    job_config, data=dataclasses.replace(job_config.data, secret=secret_ref)
                )
        write_config(svc, job_config)
        # a capacity failure re-sends it
        record = record.with_changes({"launched_request": dataclasses.asdict(request)})
        svc.jobs.create(record)
        created = True
        try:
            svc.platform.start(request)
        except CapacityError as exc:
            return enqueue(svc, record, request, str(exc))
        return record
    except BaseException as exc:
        if isinstance(exc, StorageFull):
            log.warning("launch of %s failed, removing what was written: %s", job_id, exc.message)
        else:
            log.exception("launch of %s failed: removing what was written", job_id)
        if created:
            _undo(f"job record {job_id}", svc.jobs.delete, job_id)
        _undo(f"artifacts {key}", svc.artifacts.delete_prefix, key)
        if secret_ref:
            _undo(f"secret of {job_id}", svc.secrets.delete, secret_ref)
        raise


def check_quotas(svc: Adapters, record: Record) -> None:
    """The request's tenant may start this job: its instance types and its concurrent jobs
    (queued ones count: they start on their own). Read from the active-jobs index: O(active)."""
    record = Job.from_item(record)
    tenant = tenancy.current()
    instance_type = (record.resource or {}).get("InstanceType")
    allowed = tenant.quotas.instance_types
    if allowed and instance_type not in allowed:
        raise QuotaExceeded(
            f"Quota instance_types of tenant {tenant.name or tenant.id}: {instance_type} is not one of "
            f"{', '.join(allowed)}."
        )
    most = tenant.quotas.max_concurrent_jobs
    if most is None or tenant.system:
        return
    mine = [job for job in svc.jobs.list_active() if tenancy.owner(job) == tenant.id]
    if len(mine) >= most:
        raise QuotaExceeded(
            f"Quota max_concurrent_jobs of tenant {tenant.name or tenant.id} is {most} and "
            f"{len(mine)} of its jobs are running or queued; stop one or wait for one to end."
        )


def _undo(what: str, remove, *args: Any) -> None:
    """One step of a failed launch's cleanup; a failure is logged, and the launch's own error
    is the one the caller gets."""
    try:
        remove(*args)
    except Exception:
        log.exception("could not remove the %s of a failed launch", what)


# --- the capacity queue ----------------------------------------------------------------------
# What SageMaker's FailureReason says when it accepted a job and then could not place it.
CAPACITY_FAILURES = ("capacityerror", "insufficientcapacity", "insufficient capacity", "unable to provision")
BACKOFF_CAP_S = 1800.0


def is_capacity_failure(reason: str | None) -> bool:
    text = (reason or "").lower()
    return any(marker in text for marker in CAPACITY_FAILURES)


def _queued(
    config: Settings, request: TrainingRequest, reason: str, tries: int, since_ts: float
) -> dict[str, Any]:
    """A queue entry: the request, the platform's reason, and when it may be tried again: the
    next sweep after a first refusal, then after the backoff, doubling."""
    wait = (
        0.0
        if tries <= 1
        else min(config.capacity_backoff_seconds * 2 ** (tries - 2), BACKOFF_CAP_S)
    )
    return {
        "request": dataclasses.asdict(request),
        "reason": reason,
        "since": timeutil.now_str(),
        "since_ts": since_ts,
        "tries": tries,
        "not_before": time.time() + wait,
    }


def _gave_up(config: Settings, queued: dict[str, Any], now: float) -> bool:
    since = queued.get("since_ts")
    return since is not None and now - since >= config.capacity_max_wait_seconds


def _give_up(svc: Adapters, job: Record, reason: str, since_ts: float) -> Job:
    job = Job.from_item(job)
    waited = time.time() - since_ts
    resource = job.resource or {}
    message = (
        f"No capacity for {resource.get('InstanceCount', 1)} x {resource.get('InstanceType', '?')} after "
        f"{waited / 3600:.1f} h of tries (AIFACTORY_CAPACITY_MAX_WAIT_SECONDS); the platform's last answer: {reason}"
    )
    log.warning("%s: %s", job.job_id, message)
    return svc.jobs.update(
        job.job_id,
        {
            "queued_request": None,
            "status": FAILED,
            "secondary_status": "Failed",
            "failure_reason": message,
            "status_message": "",
            "ended_at": timeutil.now_str(),
            "settled": True,
        },
    )


def enqueue(svc: Adapters, job: Record, request: TrainingRequest, reason: str) -> Job:
    """The platform cannot start `request` now: the job waits, InProgress, until it can."""
    job = Job.from_item(job)
    log.warning("no capacity for %s: queued (%s)", request.training_job_name, reason)
    since = job.capacity_since or time.time()
    return svc.jobs.update(
        job.job_id,
        {
            "queued_request": _queued(svc.settings, request, reason, 1, since),
            "secondary_status": WAITING_FOR_CAPACITY,
            "status_message": reason,
            "capacity_since": since,
        },
    )


def requeue_after_capacity_failure(svc: Adapters, job: Record, reason: str) -> Job:
    """SageMaker failed the current attempt for capacity: a new attempt of the same request
    waits in the queue (it resumes from the job's checkpoints), unless the job has waited long
    enough. Conditional on `capacity_tries`: two handlers seeing the failure queue one attempt."""
    job = Job.from_item(job)
    now = time.time()
    since = job.capacity_since or now
    if now - since >= svc.settings.capacity_max_wait_seconds:
        return _give_up(svc, job, reason, since)
    number = current_attempt(job)["attempt"] + 1
    name = attempt_name(job.job_name, number)
    request = TrainingRequest(**{**job.launched_request, "training_job_name": name})
    tries = int(job.capacity_tries or 0) + 1
    attempts = [
        *job.attempts,
        {"attempt": number, "training_job_name": name, "created_at": timeutil.now_str()},
    ]
    log.warning("%s failed for capacity (%s): attempt %d queued", job.job_id, reason, number)
    _next_attempt_config(svc, job.job_id, number)  # the trainer resumes as attempt N
    try:
        return svc.jobs.update(
            job.job_id,
            {
                "attempts": attempts,
                "queued_request": _queued(svc.settings, request, reason, tries, since),
                "status": IN_PROGRESS,
                "secondary_status": WAITING_FOR_CAPACITY,
                "status_message": reason,
                "failure_reason": "",
                "ended_at": None,
                "settled": False,
                "capacity_since": since,
                "capacity_tries": tries,
            },
            expect={"capacity_tries": job.capacity_tries},  # a scalar the requeue bumps
        )
    except ConflictError:
        return svc.jobs.get(job.job_id) or job  # another handler queued it first


def launch_queued(svc: Adapters) -> int:
    """Starts every queued job the platform now takes; returns how many started. Each job is
    claimed with a conditional write first, so two sweeps never start one job twice. Reads the
    store's active jobs only (queued ones are among them), never the whole table."""
    started, now = 0, time.time()
    for job in svc.jobs.list_active():
        queued = job.queued_request
        if not queued or job.status != IN_PROGRESS or now < float(queued.get("not_before") or 0):
            continue
        if _gave_up(svc.settings, queued, now):
            _give_up(svc, job, queued.get("reason", ""), float(queued["since_ts"]))
            continue
        try:
            svc.jobs.update(
                job.job_id,
                {"queued_request": None, "secondary_status": "Starting"},
                expect={"queued_request": queued, "status": IN_PROGRESS},
            )
        except ConflictError:
            continue  # another sweep took it, or it was stopped
        request = TrainingRequest(**queued["request"])
        try:
            svc.platform.start(request)
        except CapacityError as exc:
            tries = queued.get("tries", 1) + 1
            again = _queued(svc.settings, request, str(exc), tries, float(queued.get("since_ts") or now))
            svc.jobs.update(
                job.job_id,
                {
                    "queued_request": again,
                    "secondary_status": WAITING_FOR_CAPACITY,
                    "status_message": str(exc),
                },
            )
            continue
        except Conflict:
            log.info("%s was already started", request.training_job_name)  # a sweep died after start
        except Exception as exc:
            log.exception("queued job %s cannot start", job.job_id)
            svc.jobs.update(
                job.job_id,
                {
                    "status": FAILED,
                    "secondary_status": "Failed",
                    "failure_reason": f"{type(exc).__name__}: {exc}",
                    "ended_at": timeutil.now_str(),
                    "settled": True,
                },
            )
            continue
        svc.jobs.update(job.job_id, {"status_message": "", "launched_request": queued["request"]})
        started += 1
    return started


def base_record(job_id: str, job_name: str, api: str, task: str, **fields: Any) -> Job:
    """A new job's record, before `launch` stores it."""
    now = timeutil.now_str()
    item = {
        "job_id": job_id,
        "job_name": job_name,
        "api": api,
        "task": task,
        "status": IN_PROGRESS,
        "secondary_status": "Starting",
        "failure_reason": "",
        "created_at": now,
        "ended_at": None,
        "artifact_key": artifact_key(job_id),
        "attempts": [{"attempt": 1, "training_job_name": job_name, "created_at": now}],
        "format_version": layout.FORMAT_VERSION,
        tenancy.TENANT_KEY: tenancy.owner_of_new_work(),
        **fields,
    }
    return Job.from_item(item)


def refresh(svc: Adapters, job: Record) -> Job:
    """Brings the record's status up to date with the current attempt's platform status."""
    job = Job.from_item(job)
    if job.status in TERMINAL and job.settled:
        return job
    if job.queued_request:
        return job  # waiting for capacity: the platform has no such job yet
    try:
        description = svc.platform.describe(current_attempt(job)["training_job_name"])
    except NotFound:
        return job
    changes = {
        "status": description.status,
        "secondary_status": description.secondary_status,
        "failure_reason": description.failure_reason,
    }
    billable = description.billable_seconds
    if billable is not None and (
        description.status in TERMINAL
        or abs(billable - (job.billable_seconds or 0)) >= BILLABLE_REFRESH_S
        or job.billable_seconds is None
    ):
        changes["billable_seconds"] = billable
    if (
        description.status == FAILED
        and is_capacity_failure(description.failure_reason)
        and job.launched_request  # jobs launched before this was kept fail as they did
    ):
        return requeue_after_capacity_failure(svc, job, description.failure_reason)
    if description.status in TERMINAL:
        changes["ended_at"] = description.end_time or timeutil.now_str()
        changes["settled"] = True
    if all(job.get(k) == v for k, v in changes.items()):
        return job
    try:
        return svc.jobs.update(job.job_id, changes)
    except StorageFull as exc:  # the read still answers; the next one saves it
        log.warning("refreshed status of %s not saved: %s", job.job_id, exc.message)
        return job.with_changes(changes)


def get(svc: Adapters, job_id: str, api: str | None = None) -> Job:
    job = svc.jobs.get(job_id)
    if not tenancy.current().can_see(job) or (api and job.api != api):  # another's: as if absent
        raise NotFound("Job not found.")
    return refresh(svc, job)


def get_by_name(svc: Adapters, job_name: str, api: str | None = None) -> Job:
    job = svc.jobs.get_by_name(job_name)
    if not tenancy.current().can_see(job) or (api and job.api != api):  # another's: as if absent
        raise NotFound(f"Job {job_name} not found.")
    return refresh(svc, job)


def stop(svc: Adapters, job: Record) -> Job:
    job = Job.from_item(job)
    queued = job.queued_request
    if queued and job.status == IN_PROGRESS:  # never started: nothing to ask the platform
        try:
            return svc.jobs.update(
                job.job_id,
                {
                    "status": STOPPED,
                    "secondary_status": "Stopped",
                    "queued_request": None,
                    "status_message": "",
                    "ended_at": timeutil.now_str(),
                    "settled": True,
                },
                expect={"queued_request": queued, "status": IN_PROGRESS},
            )
        except ConflictError:
            job = svc.jobs.get(job.job_id) or job  # a sweep is launching it right now
    try:
        svc.platform.stop(current_attempt(job)["training_job_name"])
    except NotFound:
        if job.status == IN_PROGRESS:
            raise Conflict("The job is being launched; stop it again in a moment.") from None
        raise
    return refresh(svc, job)


def restore(svc: Adapters, job: Record, image: str, data_uri: str | None) -> Job:
    """A new attempt under the same artifact prefix: the trainer resumes from its checkpoints
    (and reads the job's hyper-parameters from its job.json, as the first attempt did)."""
    job = Job.from_item(job)
    if job.status != STOPPED:
        raise Conflict("Job is not stopped.")
    number = current_attempt(job)["attempt"] + 1
    name = attempt_name(job.job_name, number)
    attempts = [
        *job.attempts,
        {"attempt": number, "training_job_name": name, "created_at": timeutil.now_str()},
    ]
    try:  # the conditional write decides a race between two restores: the loser gets a 409
        job = svc.jobs.update(
            job.job_id,
            {
                "attempts": attempts,
                "status": IN_PROGRESS,
                "secondary_status": "Starting",
                "failure_reason": "",
                "ended_at": None,
                "settled": False,
                "capacity_since": None,
                "capacity_tries": 0,
            },
            expect={"status": STOPPED},
        )
    except ConflictError:
        raise Conflict("Job is not stopped.") from None
    request = training_request(svc.settings, job, image, data_uri, name)
    try:  # job.json too: on a full disk the job stays stopped, not InProgress with no attempt
        _next_attempt_config(svc, job.job_id, number)
        job = svc.jobs.update(job.job_id, {"launched_request": dataclasses.asdict(request)})
        svc.platform.start(request)
    except CapacityError as exc:
        return enqueue(svc, job, request, str(exc))
    except BaseException:
        svc.jobs.update(job.job_id, {"attempts": attempts[:-1], "status": STOPPED, "settled": True})
        raise
    return job


def clear(svc: Adapters, job: Record) -> None:
    job = Job.from_item(job)
    if job.status not in TERMINAL:
        raise Conflict("Job is not stopped.")
    svc.artifacts.delete_prefix(job.artifact_key)
    if job.secret_ref:
        svc.secrets.delete(job.secret_ref)
    svc.jobs.delete(job.job_id)


def training_request(
    config: Settings,
    job: Record,
    image: str,
    data_uri: str | None,
    training_job_name: str | None = None,
) -> TrainingRequest:
    """One attempt's platform request. No hyper-parameters: they travel once, in job.json
    (contracts.job_config), which every attempt's trainer reads; SageMaker's 100 strings of
    256 characters could not hold every job's anyway."""
    job = Job.from_item(job)
    resource = job.resource
    spot = resource.get(SPOT_KEY)
    return TrainingRequest(
        job_id=job.job_id,
        training_job_name=training_job_name or job.job_name,
        image=image,
        hyperparameters={},
        instance_type=resource["InstanceType"],
        instance_count=resource["InstanceCount"],
        volume_size_gb=resource["VolumeSizeInGB"],
        artifact_uri=job.artifact_uri,
        data_uri=data_uri,
        max_runtime_s=config.max_runtime_seconds,
        tags={"aifactory:job_id": job.job_id, "aifactory:api": job.api, "aifactory:task": job.task},
        use_spot=config.spot_training if spot is None else bool(spot),
        max_wait_s=resource.get(MAX_WAIT_KEY),
        keep_alive_s=int(resource.get(KEEP_ALIVE_KEY) or 0),
    )
