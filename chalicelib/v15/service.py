"""The v1.5 training API on the shared job lifecycle.

The API never renders or computes anything torch-bound: monitor, losses and checkpoints
are read back from what the trainer wrote under the job's artifact prefix.
"""

from __future__ import annotations

import base64
import re
from typing import Any

from chalicelib import settings, timeutil
from chalicelib.errors import Conflict, NotFound, ValidationError
from chalicelib.ports import COMPLETED, FAILED, IN_PROGRESS, STOPPED, STOPPING
from chalicelib.security import check_data_location
from chalicelib.services import jobs
from chalicelib.v15 import params
from chalicelib.wiring import Services

API = "v1.5"
VERSION = "v1.5.0"
_EPOCH_DIR = re.compile(r"/checkpoints/epoch-(\d+)/([^/]+)$")
DEFAULT_RESOURCE = {"InstanceCount": 1, "VolumeSizeInGB": 30}


# --- train -----------------------------------------------------------------------------
def _source_job(svc: Services, field: str, job_id: str, epoch: int) -> dict[str, Any]:
    job = svc.jobs.get(job_id)
    if job is None or job["api"] != API:
        raise ValidationError(field, f"job '{job_id}' not found")
    weights = f"{job['artifact_key']}/checkpoints/epoch-{epoch}/model.safetensors"
    if svc.artifacts.get_bytes(weights) is None:
        raise ValidationError(field, f"job '{job_id}' has no available checkpoint of epoch {epoch}")
    return job


def start_training(svc: Services, form: dict[str, str]) -> dict[str, str]:
    source = params.parse_source(form)
    source_job = None
    if source:
        kind, source_id, epoch = source
        field = "resume_job_id_and_epoch" if kind == params.RESUME else "finetune_job_id_and_epoch"
        source_job = _source_job(svc, field, source_id, epoch)
    resolved = params.resolve_train_args(form, source_job)
    data_dir = check_data_location(
        "data_dir", resolved["data_dir"], local=settings.is_local(), roots=settings.data_roots()
    )
    task = resolved["task"]
    hyperparameters = {"task": task, **resolved["hyperparameters"]}
    job_id, job_name = jobs.new_ids("v15")
    artifact_uri = svc.artifacts.job_uri(job_id)
    resource = {"InstanceType": settings.v15_instance_type(), **DEFAULT_RESOURCE}
    record = jobs.base_record(
        job_id,
        job_name,
        API,
        task,
        data_dir=data_dir,
        hyperparameters=hyperparameters,
        resource=resource,
        artifact_uri=artifact_uri,
        image=settings.trainer_image(),
        resume=resolved["resume"],
        finetune=resolved["finetune"],
    )
    finetune = None
    if resolved["finetune"]:
        finetune = {"checkpoint_uri": source_job["artifact_uri"], "epoch": resolved["finetune"]["epoch"]}
    job_config = {
        "format_version": jobs.FORMAT_VERSION,
        "job_id": job_id,
        "job_name": job_name,
        "api": API,
        "task": task,
        "attempt": 1,
        "hyperparameters": hyperparameters,
        "data": {"type": "data_dir", "channel": "training"},
        "artifacts": {"uri": artifact_uri},
        "finetune": finetune,
    }
    request = jobs.training_request(
        record, record["image"], params.to_sagemaker_hyperparameters(hyperparameters), data_dir
    )
    try:
        if resolved["resume"]:
            _copy_resume_point(svc, source_job, resolved["resume"]["epoch"], jobs.artifact_key(job_id))
        jobs.launch(svc, record, job_config, None, request)
    except BaseException:
        svc.artifacts.delete_prefix(jobs.artifact_key(job_id))  # the copied resume point, if any
        raise
    return {"result": "OK", "job_id": job_id}


def _copy_resume_point(svc: Services, source: dict[str, Any], epoch: int, target_key: str) -> None:
    """The new job starts with the source's checkpoint of `epoch`, so its trainer resumes at epoch+1."""
    prefix = f"{source['artifact_key']}/checkpoints/"
    for key in list(svc.artifacts.list_keys(prefix)):
        match = _EPOCH_DIR.search(key)
        if match and int(match.group(1)) <= epoch:
            if int(match.group(1)) < epoch and match.group(2) in ("model.safetensors", "train_state.pt"):
                continue  # earlier epochs come along as history, not as resume points
            svc.artifacts.put_bytes(
                target_key + key[len(source["artifact_key"]) :], svc.artifacts.get_bytes(key)
            )
    losses = svc.artifacts.get_bytes(f"{source['artifact_key']}/losses.json")
    if losses is not None:
        svc.artifacts.put_bytes(f"{target_key}/losses.json", losses)


# --- lifecycle ---------------------------------------------------------------------------
def stop(svc: Services, job_id: str) -> dict[str, str]:
    try:
        job = jobs.get(svc, job_id, API)
    except NotFound:
        raise NotFound("Job is not under tracking.") from None
    if job["status"] != IN_PROGRESS:
        raise Conflict("Job is not under tracking.")
    jobs.stop(svc, job)
    return {"result": "OK"}


def restore(svc: Services, job_id: str) -> dict[str, str]:
    job = jobs.get(svc, job_id, API)
    jobs.restore(
        svc, job, job["image"], params.to_sagemaker_hyperparameters(job["hyperparameters"]), job["data_dir"]
    )
    return {"result": "OK"}


def clear(svc: Services, job_id: str) -> dict[str, str]:
    job = jobs.get(svc, job_id, API)
    if job["status"] not in (STOPPED, COMPLETED, FAILED):
        raise Conflict("Job is not stopped.")
    jobs.clear(svc, job)
    return {"result": "OK"}


# --- monitor -----------------------------------------------------------------------------
def _failure_exception(reason: str) -> dict[str, str]:
    match = re.match(r"^(E0\d) (\w+): (.*)", reason or "", re.S)
    if match:
        head, _, trace = match.group(3).partition("\n\n")
        return {"code": match.group(1), "type": match.group(2), "message": head, "traceback": trace}
    return {
        "code": "E00",
        "type": "PlatformError",
        "message": reason or "The training job failed.",
        "traceback": "",
    }


def monitor(svc: Services, job_id: str) -> dict[str, Any]:
    job = jobs.get(svc, job_id, API)
    progress = svc.artifacts.get_json(f"{job['artifact_key']}/progress.json", {}) or {}
    attempt = jobs.current_attempt(job)["attempt"]
    if progress.get("attempt", 1) != attempt:
        progress = {
            k: v for k, v in progress.items() if k in ("epoch", "total_epoch", "batch", "total_batch")
        }
    total_epoch = job["hyperparameters"].get("num_epochs_to_finish", 0)
    body = {
        "result": "OK",
        "status": "initializing",
        "datetime": progress.get("datetime") or timeutil.now_str(),
        "epoch": progress.get("epoch", 0),
        "total_epoch": progress.get("total_epoch") or total_epoch,
        "batch": progress.get("batch", 0),
        "total_batch": progress.get("total_batch", 0),
        "avg_loss": progress.get("avg_loss", -1),
        "learning_rate": progress.get("learning_rate", -1),
        "samples_per_sec": progress.get("samples_per_sec", -1),
        "eta_hr": progress.get("eta_hr", -1),
        "exception": None,
    }
    status = job["status"]
    if status in (IN_PROGRESS, STOPPING):
        # A stopping job is still saving: it reads "stopped" once restore (PUT) can take it.
        body["status"] = (
            progress.get("status") if progress.get("status") in ("initialized", "running") else "initializing"
        )
    elif status == STOPPED:
        body["status"] = "stopped"
    elif status == COMPLETED:
        body["status"] = "finished"
        body["eta_hr"] = 0
    elif status == FAILED:
        body["status"] = "exception"
        body["exception"] = progress.get("exception") or _failure_exception(job.get("failure_reason", ""))
    return body


def hyper_parameters(svc: Services, job_id: str) -> dict[str, Any]:
    job = jobs.get(svc, job_id, API)
    return {
        "result": "OK",
        "hyper-parameters": params.hyperparameters_view(job["task"], job["hyperparameters"]),
    }


def losses(svc: Services, job_id: str) -> dict[str, Any]:
    job = jobs.get(svc, job_id, API)
    return {"result": "OK", "losses": svc.artifacts.get_json(f"{job['artifact_key']}/losses.json", []) or []}


# --- checkpoints ---------------------------------------------------------------------------
def _score(task: str, metrics: dict[str, Any]) -> float:
    if task == "classification":
        return float((metrics.get("overall") or {}).get("accuracy", -1))
    aps = (metrics.get("specific") or {}).get("aps") or [-1]
    return float(aps[0])


def _scan_checkpoints(svc: Services, job: dict[str, Any]) -> list[dict[str, Any]]:
    files: dict[int, set[str]] = {}
    for key in svc.artifacts.list_keys(f"{job['artifact_key']}/checkpoints/"):
        match = _EPOCH_DIR.search(key)
        if match:
            files.setdefault(int(match.group(1)), set()).add(match.group(2))
    found = []
    for epoch in sorted(files):
        if "metrics.json" not in files[epoch]:
            continue
        data = svc.artifacts.get_json(f"{job['artifact_key']}/checkpoints/epoch-{epoch}/metrics.json", None)
        if not data:
            continue
        found.append(
            {
                "epoch": epoch,
                "avg_loss": data.get("avg_loss", -1),
                "metrics": data.get("metrics", {}),
                "is_available": int("model.safetensors" in files[epoch]),
                "score": _score(job["task"], data.get("metrics", {})),
            }
        )
    if found:
        best = max(found, key=lambda c: (c["score"], -c["epoch"]))
        for item in found:
            item["is_best"] = int(item is best)
    return found


def checkpoints(svc: Services, job_id: str) -> dict[str, Any]:
    job = jobs.get(svc, job_id, API)
    metric_name = "accuracy" if job["task"] == "classification" else "mean_ap"
    return {
        "result": "OK",
        "checkpoints": [
            {
                "epoch": c["epoch"],
                "avg_loss": c["avg_loss"],
                metric_name: c["score"],
                "is_best": c["is_best"],
                "is_available": c["is_available"],
            }
            for c in _scan_checkpoints(svc, job)
        ],
    }


def checkpoint(svc: Services, job_id: str, epoch: str) -> dict[str, Any]:
    job = jobs.get(svc, job_id, API)
    try:
        number = int(epoch)
    except ValueError:
        raise ValidationError("epoch", f"must be an integer; got '{epoch}'") from None
    for item in _scan_checkpoints(svc, job):
        if item["epoch"] == number:
            plot = svc.artifacts.get_bytes(f"{job['artifact_key']}/checkpoints/epoch-{number}/metric.jpg")
            return {
                "result": "OK",
                "checkpoint": {
                    "epoch": number,
                    "avg_loss": item["avg_loss"],
                    "metrics": item["metrics"],
                    "base64_metric_plot": base64.b64encode(plot).decode() if plot else None,
                    "is_best": item["is_best"],
                    "is_available": item["is_available"],
                },
            }
    raise NotFound(f"Checkpoint of epoch {number} not found.")
