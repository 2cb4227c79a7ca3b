"""The v1.5 training API on the shared job lifecycle.

The API never renders or computes anything torch-bound: monitor, losses and checkpoints
are read back from what the trainer wrote under the job's artifact prefix.
"""

from __future__ import annotations

import base64
import itertools
import logging
from typing import Any

from chalicelib import limits, tenancy
from chalicelib.errors import Conflict, DomainError, NotFound, StillComputing, ValidationError
from chalicelib.job_index import newest_first_key
from chalicelib.job_record import Job
from chalicelib.ports import COMPLETED, FAILED, IN_PROGRESS, STOPPED, STOPPING, Adapters
from chalicelib.security import check_data_location
from chalicelib.services import data_roots, jobs, paging
from chalicelib.services import logs as job_logs
from chalicelib.settings import Settings
from chalicelib.v15 import class_pages, deployments, disk_space, plots
from contracts import heartbeat as heartbeats
from contracts import layout, statuses, timeutil
from contracts import metrics as metric_names
from contracts import v15_arguments as params
from contracts.api_names import AI_FACTORY
from contracts.api_names import V15 as API
from contracts.job_config import DATA_DIR, DataSource, JobConfig
from contracts.plots import METRIC as METRIC_PLOT
from contracts.v15_literals import parse_int, parse_int_in

log = logging.getLogger(__name__)

ENVIRONMENT_PAGE = 20
ENVIRONMENT_LOOKBACK = 200  # jobs that never reached the trainer record nothing
VERSION = "v1.5.0"
DEFAULT_RESOURCE = {"InstanceCount": 1, "VolumeSizeInGB": 30}


# --- train -----------------------------------------------------------------------------
def _source_job(svc: Adapters, field: str, job_id: str, epoch: int) -> Job:
    job = svc.jobs.get(job_id)
    if job is None or job.api != API:
        raise ValidationError(field, f"job '{job_id}' not found")
    weights = layout.job_key(job_id, layout.epoch_file(epoch, layout.WEIGHTS))
    if svc.artifacts.get_bytes(weights) is None:
        raise ValidationError(field, f"job '{job_id}' has no available checkpoint of epoch {epoch}")
    return job


# Fields the train route reads beside the argument table: the spot and warm pool options (`capacity`).
CAPACITY_FIELDS = ("use_spot", "max_wait_seconds", "keep_alive_seconds", "instance_count")


def start_training(svc: Adapters, form: dict[str, str]) -> dict[str, Any]:
    """400 for a field no task knows (with the closest known name: a typo must not start a job
    with defaults); an argument of another task is accepted and named in `ignored_arguments`."""
    params.check_argument_names(form, CAPACITY_FIELDS)
    source = params.parse_source(form)
    source_job = None
    if source:
        kind, source_id, epoch = source
        field = "resume_job_id_and_epoch" if kind == params.RESUME else "finetune_job_id_and_epoch"
        source_job = _source_job(svc, field, source_id, epoch)
    resolved = params.resolve_train_args(form, source_job)
    config = svc.settings
    limits.check_v15_arguments(config, resolved["hyperparameters"])
    data_dir = check_data_location(
        "data_dir", resolved["data_dir"], local=config.is_local, roots=config.data_roots, home=config.home
    )
    task = resolved["task"]
    hyperparameters = {"task": task, **resolved["hyperparameters"]}
    job_id, job_name = jobs.new_ids("v15", config.stage)
    artifact_uri = svc.artifacts.job_uri(job_id)
    resource = {"InstanceType": config.v15_instance_type, **DEFAULT_RESOURCE, **capacity(form, config)}
    record = jobs.base_record(
        job_id,
        job_name,
        API,
        task,
        data_dir=data_dir,
        hyperparameters=hyperparameters,
        resource=resource,
        artifact_uri=artifact_uri,
        image=config.trainer_image,
        resume=resolved["resume"],
        finetune=resolved["finetune"],
    )
    finetune = None
    if resolved["finetune"]:
        finetune = {"checkpoint_uri": source_job.artifact_uri, "epoch": resolved["finetune"]["epoch"]}
    job_config = JobConfig(
        job_id=job_id,
        job_name=job_name,
        api=API,
        task=task,
        artifact_uri=artifact_uri,
        format_version=layout.FORMAT_VERSION,
        hyperparameters=hyperparameters,
        data=DataSource(type=DATA_DIR, channel="training"),
        finetune=finetune,
    )
    request = jobs.training_request(config, record, record.image, data_dir)
    try:
        if resolved["resume"]:
            _copy_resume_point(svc, source_job, resolved["resume"]["epoch"], job_id)
        jobs.launch(svc, record, job_config, None, request)
    except BaseException:
        svc.artifacts.delete_prefix(layout.job_prefix(job_id))  # the copied resume point, if any
        raise
    data_roots.remember(config, data_dir)  # its images may be inferred on by path (services.data_roots)
    return {"result": "OK", "job_id": job_id, "ignored_arguments": params.ignored_arguments(task, form)}


def capacity(form: dict[str, str], config: Settings) -> dict[str, Any]:
    """`use_spot` (true/false; the stage's AIFACTORY_SPOT when absent), `max_wait_seconds` and
    `keep_alive_seconds`: the AI Factory resource's spot and warm pool options in v1.5's style;
    `instance_count`: hosts of one job (1 to the stage's AIFACTORY_MAX_INSTANCE_COUNT)."""
    found: dict[str, Any] = {}
    count = form.get("instance_count")
    if count not in (None, ""):
        expected = (
            f"an integer in [1, {config.max_instance_count}] (AIFACTORY_MAX_INSTANCE_COUNT)"
        )
        number = parse_int("instance_count", count, expected)
        if not 1 <= number <= config.max_instance_count:
            raise ValidationError("instance_count", f"must be {expected}; got {number}")
        found["InstanceCount"] = number
    spot = form.get("use_spot")
    if spot not in (None, ""):
        if str(spot).strip().lower() not in ("true", "false"):
            raise ValidationError("use_spot", f"must be true or false; got '{spot}'")
        found[jobs.SPOT_KEY] = str(spot).strip().lower() == "true"
    for name, key, high in (
        ("max_wait_seconds", jobs.MAX_WAIT_KEY, 28 * 24 * 3600),
        ("keep_alive_seconds", jobs.KEEP_ALIVE_KEY, 21600),
    ):
        value = form.get(name)
        if value in (None, ""):
            continue
        try:
            number = int(str(value))
        except ValueError:
            raise ValidationError(name, f"must be an integer; got '{value}'") from None
        if not 0 <= number <= high:
            raise ValidationError(name, f"must be an integer in [0, {high}]; got {number}")
        found[key] = number
    return found


def _copy_resume_point(svc: Adapters, source: Job, epoch: int, target_id: str) -> None:
    """The new job starts with the source's checkpoint of `epoch`, so its trainer resumes at epoch+1.

    Server-side copies: checkpoint bytes never pass through the API's memory.
    """
    source_prefix = layout.job_prefix(source.job_id)
    for key in list(svc.artifacts.list_keys(f"{source_prefix}/{layout.CHECKPOINTS}/")):
        found = layout.parse_epoch_key(key)
        if found and found[0] <= epoch:
            if found[0] < epoch and found[1] in layout.RESUME_FILES:
                continue  # earlier epochs come along as history, not as resume points
            svc.artifacts.copy(key, layout.job_prefix(target_id) + key[len(source_prefix) :])
    for name in (layout.LOSSES, layout.LOSS_STEPS):
        if svc.artifacts.get_bytes(layout.job_key(source.job_id, name)) is not None:
            svc.artifacts.copy(layout.job_key(source.job_id, name), layout.job_key(target_id, name))


# --- lifecycle ---------------------------------------------------------------------------
def stop(svc: Adapters, job_id: str) -> dict[str, str]:
    try:
        job = jobs.get(svc, job_id, API)
    except NotFound:
        raise NotFound("Job is not under tracking.") from None
    if job.status != IN_PROGRESS:
        raise Conflict("Job is not under tracking.")
    jobs.stop(svc, job)
    return {"result": "OK"}


def restore(svc: Adapters, job_id: str) -> dict[str, str]:
    job = jobs.get(svc, job_id, API)
    jobs.restore(svc, job, job.image, job.data_dir)
    return {"result": "OK"}


def clear(svc: Adapters, job_id: str) -> dict[str, str]:
    job = jobs.get(svc, job_id, API)
    if job.status not in (STOPPED, COMPLETED, FAILED):
        raise Conflict("Job is not stopped.")
    deployments.undeploy_all(svc, job_id)
    jobs.clear(svc, job)
    return {"result": "OK"}


LIST_LIMIT = 100  # jobs a list page holds by default
LIST_LIMIT_MAX = 200  # and at most: each row reads the job's heartbeat


def list_jobs(svc: Adapters, query: dict[str, Any] | None = None) -> dict[str, Any]:
    """v1.5 jobs newest first, a page at a time, with what a dashboard row shows: `limit`
    (default 100, at most 200) jobs after the one `next_token` names, and the `next_token` of
    the next page (null on the last). The page is one bounded read of the store; each row then
    reads the job's heartbeat (and asks the platform about a job still running) as monitor
    does, without reading the record again."""
    query = query if isinstance(query, dict) else {}
    limit = parse_int_in("limit", query.get("limit", LIST_LIMIT), 1, LIST_LIMIT_MAX)
    records, next_token = paging.page(svc, API, limit, query.get("next_token") or None)
    found = []
    for job in records:
        body = _monitor(svc, jobs.refresh(svc, job))
        found.append(
            {
                "job_id": job.job_id,
                "task": job.task,
                "status": body["status"],
                "epoch": body["epoch"],
                "total_epoch": body["total_epoch"],
                "created_at": job.created_at,
            }
        )
    return {"result": "OK", "jobs": found, "next_token": next_token}


def logs(svc: Adapters, job_id: str, query: dict[str, str]) -> dict[str, Any]:
    job = jobs.get(svc, job_id, API)
    return {
        "result": "OK",
        **job_logs.read(
            svc, job, query.get("offset"), query.get("limit"), query.get("attempt"), query.get("metrics")
        ),
    }


# --- monitor -----------------------------------------------------------------------------
def monitor(svc: Adapters, job_id: str) -> dict[str, Any]:
    return _monitor(svc, jobs.get(svc, job_id, API))


def _monitor(svc: Adapters, job: Job) -> dict[str, Any]:
    """The monitor body of a record already refreshed from the platform."""
    job_id = job.job_id
    progress = svc.artifacts.get_json(layout.job_key(job_id, layout.PROGRESS), {}) or {}
    progress = heartbeats.of_attempt(progress, jobs.current_attempt(job)["attempt"])
    total_epoch = (job.hyperparameters or {}).get("num_epochs_to_finish", 0)
    body = {
        "result": "OK",
        "status": "initializing",
        "datetime": progress.get("datetime") or timeutil.now_str(),
        **heartbeats.readings(progress),
        "total_epoch": progress.get("total_epoch") or total_epoch,
        # Added: `training` or `evaluating` (the validation pass) while running, else null.
        statuses.PHASE: None,
        "exception": None,
        # Added to the spec's fields: instance seconds billed so far (SageMaker's
        # BillableTimeInSeconds; locally every host's trainer wall time), and the platform's
        # secondary status (`WaitingForCapacity`, `Interrupted`, `Training`, ...) with its reason.
        "billable_seconds": job.billable_seconds,
        "secondary_status": job.secondary_status or "",
    }
    if job.status_message:
        body["status_message"] = job.status_message
    status = job.status
    if status in (IN_PROGRESS, STOPPING):
        # A stopping job is still saving: it reads "stopped" once restore (PUT) can take it.
        body["status"] = statuses.v15_progress_status(status, progress.get("status"))
        if body["status"] == statuses.RUNNING:
            body[statuses.PHASE] = progress.get(statuses.PHASE)
    elif status == STOPPED:
        body["status"] = "stopped"
        body["eta_hr"] = -1  # nothing left that it will do by itself
    elif status == COMPLETED:
        body["status"] = "finished"
        body["eta_hr"] = 0
    elif status == FAILED:
        body["status"] = "exception"
        body["eta_hr"] = -1
        body["exception"] = progress.get("exception") or statuses.parse_failure_reason(
            job.failure_reason or ""
        )
    return body


# --- machine ---------------------------------------------------------------------------------
def environment(svc: Adapters) -> dict[str, Any]:
    hardware = svc.platform.hardware()
    software = hardware.software if hardware.software is not None else _latest_recorded_software(svc)
    return {
        "result": "OK",
        "environment": {
            "hardware": {"devices": hardware.devices},
            "software": {k: software.get(k) for k in ("python_version", "cuda_version", "cudnn_version")},
        },
    }


def _latest_recorded_software(svc: Adapters) -> dict[str, Any]:
    """What the trainer image recorded on its last run: the Lambda has no torch to ask. Each
    API's newest jobs (at most ENVIRONMENT_LOOKBACK) are walked a page at a time until one has
    a record; the newer of the two wins."""
    found = []
    for api in (API, AI_FACTORY):  # the other API's jobs ran the same trainer image
        newest = paging.newest_first(svc, api, ENVIRONMENT_PAGE)
        for job in itertools.islice(newest, ENVIRONMENT_LOOKBACK):
            data = svc.artifacts.get_json(layout.job_key(job.job_id, layout.ENVIRONMENT), None)
            if data:
                found.append((newest_first_key(job), data.get("software", {})))
                break
    return max(found, key=lambda pair: pair[0])[1] if found else {}


def devices(svc: Adapters) -> dict[str, Any]:
    live = svc.platform.live_devices()
    if live is None:  # readings from the running jobs' heartbeats
        live = []
        for job in svc.jobs.list_active():  # the store's index of active jobs, not the table
            if job.status == IN_PROGRESS and tenancy.current().can_see(job):  # its own jobs' instances
                progress = svc.artifacts.get_json(layout.job_key(job.job_id, layout.PROGRESS), {}) or {}
                live.extend(progress.get("devices") or [])
    return {"result": "OK", "devices": live}


def hyper_parameters(svc: Adapters, job_id: str) -> dict[str, Any]:
    job = jobs.get(svc, job_id, API)
    return {
        "result": "OK",
        "hyper-parameters": params.hyperparameters_view(job.task, job.hyperparameters or {}),
    }


def losses(svc: Adapters, job_id: str) -> dict[str, Any]:
    job = jobs.get(svc, job_id, API)
    return {
        "result": "OK",
        "losses": svc.artifacts.get_json(layout.job_key(job.job_id, layout.LOSSES), []) or [],
    }


# --- checkpoints ---------------------------------------------------------------------------
def _scan_checkpoints(svc: Adapters, job: Job) -> list[dict[str, Any]]:
    files: dict[int, set[str]] = {}
    for key in svc.artifacts.list_keys(layout.job_key(job.job_id, layout.CHECKPOINTS) + "/"):
        found = layout.parse_epoch_key(key)
        if found:
            files.setdefault(found[0], set()).add(found[1])
    found = []
    for epoch in sorted(files):
        if layout.METRICS_JSON not in files[epoch]:
            continue
        data = svc.artifacts.get_json(
            layout.job_key(job.job_id, layout.epoch_file(epoch, layout.METRICS_JSON))
        )
        if not data:
            continue
        found.append(
            {
                "epoch": epoch,
                "avg_loss": data.get("avg_loss", -1),
                "metrics": data.get("metrics", {}),
                "is_available": int(layout.WEIGHTS in files[epoch]),
                "score": metric_names.headline(job.task, data.get("metrics", {})),
            }
        )
    best = metric_names.best_epoch({c["epoch"]: c["score"] for c in found})
    for item in found:
        item["is_best"] = int(item["epoch"] == best)
    return found


def checkpoints(svc: Adapters, job_id: str) -> dict[str, Any]:
    """Added to the spec's fields: each checkpoint's `bytes` and the job's `disk_bytes` (all it
    holds in the artifact store), chalicelib.v15.disk_space."""
    job = jobs.get(svc, job_id, API)
    metric_name = "accuracy" if job.task == "classification" else "mean_ap"
    space = disk_space.footprint(disk_space.sizes(svc, job.job_id))
    return {
        "result": "OK",
        "checkpoints": [
            {
                "epoch": c["epoch"],
                "avg_loss": c["avg_loss"],
                metric_name: c["score"],
                "is_best": c["is_best"],
                "is_available": c["is_available"],
                "bytes": space["checkpoint_bytes"].get(c["epoch"], 0),
            }
            for c in _scan_checkpoints(svc, job)
        ],
        "disk_bytes": space["disk_bytes"],
    }


def _metric_plot(svc: Adapters, job: Job, number: int, item: dict[str, Any]) -> bytes | None:
    """The checkpoint's metric plot, drawn on first request; a checkpoint is still shown (with
    a null plot) when drawing fails, e.g. on a stage without a tools function; a drawing still
    under way past the synchronous budget is a 503 "retry" (the plot comes with the retry)."""
    try:
        return plots.checkpoint_plot(svc, job, number, item, METRIC_PLOT)
    except StillComputing:
        raise
    except DomainError as exc:
        log.warning("metric plot of %s epoch %d not drawn: %s", job.job_id, number, exc)
        return None


def checkpoint(svc: Adapters, job_id: str, epoch: str, query: dict[str, Any] | None = None) -> dict[str, Any]:
    """One checkpoint; its per-class metrics a page at a time past 3 MB of them (`class_offset`
    in `query`, chalicelib.v15.class_pages), so the answer fits Lambda's 6 MB for any class count."""
    job = jobs.get(svc, job_id, API)
    try:
        number = int(epoch)
    except ValueError:
        raise ValidationError("epoch", f"must be an integer; got '{epoch}'") from None
    for item in _scan_checkpoints(svc, job):
        if item["epoch"] == number:
            metrics, classes = class_pages.page(item["metrics"], query)  # a bad class_offset: 400 first
            plot = _metric_plot(svc, job, number, item)
            return {
                "result": "OK",
                "checkpoint": {
                    "epoch": number,
                    "avg_loss": item["avg_loss"],
                    "metrics": metrics,
                    "base64_metric_plot": base64.b64encode(plot).decode() if plot else None,
                    "is_best": item["is_best"],
                    "is_available": item["is_available"],
                    **({"classes": classes} if classes is not None else {}),
                },
            }
    raise NotFound(f"Checkpoint of epoch {number} not found.")
