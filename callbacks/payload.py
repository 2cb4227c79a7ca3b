"""The callback body of spec/ai-factory-api.md, built from the job record and result.json."""

from __future__ import annotations

from typing import Any


def build(job: dict[str, Any], result: dict[str, Any] | None, model_url: str | None) -> dict[str, Any]:
    payload = {
        "status": job["status"],
        "TrainingEndTime": job.get("ended_at"),
        "CreationTime": job["created_at"],
        "job_name": job["job_name"],
        "model": model_url if job["status"] == "Completed" else None,
        "task_def": job.get("task_def") or job.get("task"),
        "creator": job.get("creator"),
        "log": (result or {}).get("log") or {},
        # Added to the spec's fields: instance seconds billed (SageMaker's BillableTimeInSeconds;
        # on the local platform every host's trainer wall time, restarts after interruptions included).
        "BillableTimeInSeconds": job.get("billable_seconds"),
    }
    if job.get("failure_reason"):
        payload["FailureReason"] = job["failure_reason"]
    return payload
