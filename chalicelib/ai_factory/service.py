"""create / check / status / stop for the AI Factory API."""

from __future__ import annotations

import re
from typing import Any

from chalicelib.ai_factory.request import parse_create, parse_job_name
from chalicelib.errors import NotFound, ValidationError
from chalicelib.job_record import Job
from chalicelib.ports import Adapters
from chalicelib.services import events, jobs, outbox, paging
from chalicelib.services import logs as job_logs
from contracts import heartbeat as heartbeats
from contracts import layout
from contracts.api_names import AI_FACTORY as API
from contracts.job_config import FETCH, DataSource, JobConfig
from contracts.v15_literals import parse_int_in

FINETUNE_KEY = "model.finetuneFrom"
_STEP_WEIGHTS = re.compile(r"/checkpoints/step-(\d+)/" + re.escape(layout.WEIGHTS) + "$")


def resolve_finetune(svc: Adapters, task: str, hyperparameters: dict[str, str]) -> dict[str, Any] | None:
    """`model.finetuneFrom` (a job name) -> job.json's `finetune`, checked before anything launches.

    The source must be an AI Factory job of the same task with a saved model: its newest step
    checkpoint that has weights is pinned by step, so the new job starts from what the caller
    saw even if the source job is still writing checkpoints.
    """
    name = hyperparameters.get(FINETUNE_KEY)
    if not name:
        return None
    field = f"training_model.hyperparameters.{FINETUNE_KEY}"
    source = svc.jobs.get_by_name(name)
    if source is None or source.api != API:
        raise ValidationError(field, f"job '{name}' not found")
    if source.task != task:
        raise ValidationError(
            field, f"job '{name}' trained a {source.task} model; a {task} job can only start from {task}"
        )
    steps = [
        int(match.group(1))
        for key in svc.artifacts.list_keys(layout.job_key(source.job_id, layout.CHECKPOINTS))
        if (match := _STEP_WEIGHTS.search(key))
    ]
    for step in sorted(steps, reverse=True):
        model_json = f"{layout.text_step_dir(step)}/{layout.MODEL_JSON}"
        if svc.artifacts.get_bytes(layout.job_key(source.job_id, model_json)) is not None:
            return {"checkpoint_uri": source.artifact_uri, "step": step, "job_name": name}
    raise ValidationError(field, f"job '{name}' has no saved model yet (status {source.status})")


def create_training_job(svc: Adapters, payload: Any, public_url: str) -> dict[str, str]:
    req = parse_create(payload, svc.settings)
    finetune = resolve_finetune(svc, req.task_def, req.hyperparameters)
    svc.platform.check_image(req.image)
    job_id, job_name = jobs.new_ids("aif", svc.settings.stage)
    resource = {
        "InstanceType": req.instance_type,
        "InstanceCount": req.instance_count,
        "VolumeSizeInGB": req.volume_size_gb,
        **req.capacity,
    }
    artifact_uri = svc.artifacts.job_uri(job_id)
    record = jobs.base_record(
        job_id,
        job_name,
        API,
        req.task_def,  # the record's `task` (the callback names it task_def, callbacks.payload)
        creator=req.creator,
        image=req.image,
        hyperparameters=req.hyperparameters,
        resource=resource,
        artifact_uri=artifact_uri,
        callback={"url": req.callback_url},
        dataset={"url": req.dataset_url, "pagination": req.pagination},
        model_url=f"{public_url}/models/{job_name}" if public_url else None,
    )
    job_config = JobConfig(
        job_id=job_id,
        job_name=job_name,
        api=API,
        task=req.task_def,
        artifact_uri=artifact_uri,
        format_version=layout.FORMAT_VERSION,
        hyperparameters=req.hyperparameters,
        data=DataSource(type=FETCH, url=req.dataset_url, pagination=req.pagination),
        finetune=finetune,
    )
    request = jobs.training_request(svc.settings, record, req.image, None)
    jobs.launch(svc, record, job_config, req.secret, request)
    return {"status": "success", "job_name": job_name}


PAGE_LIMIT_MAX = 1000


def _job_item(job: Job) -> dict[str, Any]:
    item = {
        "TrainingJobStatus": job.status,
        "TrainingJobName": job.job_name,
        "CreationTime": job.created_at,
    }
    if job.ended_at:
        item["TrainingEndTime"] = job.ended_at
    if outbox.summary(job):  # the callback: pending, delivered or failed (attempts, last error)
        item["callback"] = outbox.summary(job)
    return item


def list_training_jobs(svc: Adapters, params: dict[str, Any] | None = None) -> Any:
    """Newest first, with the statuses the state-change handler wrote: no platform call per job.

    With `limit` or `next_token` the answer is `{"jobs": [...], "next_token": <token or null>}`,
    `limit` jobs (default and most 1000) after the job the token names: one bounded read of the
    store per page (`JobStore.page`). This is the form that scales. Without either it is the
    spec's list of every job, read from the store the same way a page at a time, but answered
    whole: its size grows with the history (150-300 bytes a job: some tens of thousands of jobs
    outgrow Lambda's 6 MB answer), so clients with many jobs page.
    """
    params = params if isinstance(params, dict) else {}
    if "limit" not in params and "next_token" not in params:
        return [_job_item(job) for job in paging.newest_first(svc, API, PAGE_LIMIT_MAX)]
    limit = parse_int_in("limit", params.get("limit", PAGE_LIMIT_MAX), 1, PAGE_LIMIT_MAX)
    records, next_token = paging.page(svc, API, limit, params.get("next_token"))
    return {"jobs": [_job_item(job) for job in records], "next_token": next_token}


def training_status(svc: Adapters, payload: Any) -> dict[str, str]:
    job = jobs.get_by_name(svc, parse_job_name(payload), API)
    result = {"status": job.status}
    if job.failure_reason:
        result["message"] = job.failure_reason.split("\n\n", 1)[0]
    if job.secondary_status == jobs.WAITING_FOR_CAPACITY:  # beyond the spec: why it waits
        result["secondary_status"] = jobs.WAITING_FOR_CAPACITY
        result["message"] = job.status_message or ""
    progress = _progress(svc, job)
    if progress:
        result["progress"] = progress
    callback = outbox.summary(job)
    if callback:
        result["callback"] = callback
    return result


def _progress(svc: Adapters, job: Job) -> dict[str, Any] | None:
    """The trainer's heartbeat in the text tasks' terms: steps, not epochs (one epoch of `steps`)."""
    heartbeat = svc.artifacts.get_json(layout.job_key(job.job_id, layout.PROGRESS), None) or {}
    if not heartbeat or not heartbeats.is_current(heartbeat, jobs.current_attempt(job)["attempt"]):
        return None
    return {**heartbeats.readings(heartbeat, _STEP_NAMES), "updated_at": heartbeat.get("datetime")}


# The heartbeat's fields the text tasks show, in their names (steps, not batches).
_STEP_NAMES = {
    "batch": "step",
    "total_batch": "total_steps",
    "avg_loss": "loss",
    "learning_rate": "learning_rate",
    "samples_per_sec": "samples_per_sec",
    "eta_hr": "eta_hr",
}


def stop_training_job(svc: Adapters, payload: Any) -> dict[str, str]:
    job = jobs.get_by_name(svc, parse_job_name(payload), API)
    job = jobs.stop(svc, job)
    return {"status": "success", "job_name": job.job_name, "TrainingJobStatus": job.status}


def model_artifact(svc: Adapters, job_name: str) -> tuple[str, bytes | None, str | None]:
    """The model.tar.gz of a completed job: (key, bytes when local, presigned URL when on S3)."""
    job = jobs.get_by_name(svc, job_name, API)
    key = layout.job_key(job.job_id, layout.model_output(jobs.current_attempt(job)["training_job_name"]))
    # A presigned URL does not say whether the object exists: look first (one ListObjectsV2 on S3),
    # so a missing model is this API's 404, not S3's XML error behind a redirect.
    if key not in set(svc.artifacts.list_keys(key.rsplit("/", 1)[0])):
        raise NotFound(f"Job {job_name} has no model artifact (status {job.status}).")
    url = svc.artifacts.download_url(key)
    if url:
        return key, None, url
    data = svc.artifacts.get_bytes(key)
    if data is None:
        raise NotFound(f"Job {job_name} has no model artifact (status {job.status}).")
    return key, data, None


def register_hooks() -> None:
    """This surface's part of the shared job lifecycle: an AI Factory job's end is its
    callback (the outbox sends it now, and retries it on its schedule)."""
    events.on_job_end(API, outbox.send_now)


def training_logs(svc: Adapters, payload: Any) -> dict[str, Any]:
    body = payload if isinstance(payload, dict) else {}
    job = jobs.get_by_name(svc, parse_job_name(payload), API)
    return {
        "status": "success",
        **job_logs.read(
            svc, job, body.get("offset"), body.get("limit"), body.get("attempt"), body.get("metrics")
        ),
    }
