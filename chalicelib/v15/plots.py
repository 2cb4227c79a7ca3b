"""The four plot routes: JPEGs the trainer rendered (contracts.layout), read back as base64.

The Lambda never renders: a plot that is not there yet (or a task without that plot) gets
the error shape with a message saying which.
"""

from __future__ import annotations

import base64
from typing import Any

from chalicelib.errors import NotFound, ValidationError
from chalicelib.ports import Services
from chalicelib.services import jobs
from contracts import layout

API = "v1.5"
CLASSIFICATION = "classification"


def _read(svc: Services, job_id: str, name: str, missing: str) -> str:
    data = svc.artifacts.get_bytes(layout.job_key(job_id, name))
    if data is None:
        raise NotFound(missing)
    return base64.b64encode(data).decode()


def _number(field: str, raw: str) -> int:
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise ValidationError(field, f"must be an integer; got '{raw}'") from None


def _checkpoint(svc: Services, job: dict[str, Any], epoch: str, plot: str) -> tuple[int, dict]:
    if job["task"] != CLASSIFICATION:
        raise ValidationError("task", f"a {job['task']} job has no {plot} plot (classification only)")
    number = _number("epoch", epoch)
    record = svc.artifacts.get_json(
        layout.job_key(job["job_id"], layout.epoch_file(number, layout.METRICS_JSON))
    )
    if not record:
        raise NotFound(f"Checkpoint of epoch {number} not found.")
    return number, record


def model_graph(svc: Services, job_id: str) -> dict[str, Any]:
    jobs.get(svc, job_id, API)
    plot = _read(
        svc,
        job_id,
        layout.MODEL_GRAPH_PLOT,
        "The model graph is drawn once the model is built; try again shortly.",
    )
    return {"result": "OK", "base64_model_graph_plot": plot}


def loss(svc: Services, job_id: str) -> dict[str, Any]:
    jobs.get(svc, job_id, API)
    plot = _read(
        svc, job_id, layout.LOSS_PLOT, "The loss curve is drawn after the first epoch; try again then."
    )
    return {"result": "OK", "base64_loss_plot": plot}


def confusion_matrix(svc: Services, job_id: str, epoch: str) -> dict[str, Any]:
    job = jobs.get(svc, job_id, API)
    number, _ = _checkpoint(svc, job, epoch, "confusion matrix")
    plot = _read(
        svc,
        job_id,
        layout.epoch_file(number, layout.CONFUSION_MATRIX_PLOT),
        f"Checkpoint of epoch {number} has no confusion matrix plot.",
    )
    return {"result": "OK", "base64_confusion_matrix_plot": plot}


def threshold(svc: Services, job_id: str, epoch: str, class_index: str) -> dict[str, Any]:
    job = jobs.get(svc, job_id, API)
    number, _ = _checkpoint(svc, job, epoch, "threshold")
    index = _number("class", class_index)
    model = svc.artifacts.get_json(layout.job_key(job_id, layout.epoch_file(number, layout.MODEL_JSON))) or {}
    classes = len(model.get("class_names") or [])
    if not 0 <= index <= classes:
        raise ValidationError("class", f"must be in [0, {classes}] (0 is the mean over classes); got {index}")
    plot = _read(
        svc,
        job_id,
        layout.epoch_file(number, layout.threshold_plot(index)),
        f"Checkpoint of epoch {number} has no threshold plot of class {index}.",
    )
    return {"result": "OK", "base64_threshold_plot": plot}
