"""The four plot routes and a checkpoint's metric plot, as base64 JPEGs.

The Lambda never renders and the trainer never draws: the trainer keeps numbers, and the
first request for a plot has the trainer image's `plot` tool draw it from them (inside the
synchronous budget: a drawing not done in time answers 503 "retry", chalicelib/v15/tool_jobs.py);
the JPEG is stored beside the numbers and served from there until they change (contracts.plots). A plot
whose numbers are not there yet (or a task without that plot) gets the error shape with a
message saying which. Storing the drawn JPEG only saves the next request the drawing: on a
full disk the plot is served without being stored.
"""

from __future__ import annotations

import base64
import logging
from typing import Any

from chalicelib.errors import NotFound, StorageFull, ValidationError
from chalicelib.job_record import Job
from chalicelib.ports import Adapters
from chalicelib.services import budget, jobs
from chalicelib.v15 import tool_jobs
from chalicelib.v15.tools import run_tool
from contracts import layout, plots, tools
from contracts import v15_arguments as params
from contracts.api_names import V15 as API

log = logging.getLogger(__name__)
CLASSIFICATION = "classification"
DISPLAY = "num_batches_to_display"


def _draw(
    svc: Adapters, job_id: str, key: str, kind: str, numbers: dict[str, Any], until: float | None = None
) -> tuple[bytes, bool]:
    """Has the plot tool draw `kind` from `numbers` and stores the JPEG under `key`: the JPEG,
    and whether it was stored (not on a full disk, where the plot is served all the same)."""
    request = tools.request(tools.PLOT, plot=kind, data=numbers)
    answer = run_tool(svc, request, tool_jobs.job_prefix(job_id), until=until)
    drawn = base64.b64decode(answer["base64_image"])
    try:
        svc.artifacts.put_bytes(key, drawn)
    except StorageFull as exc:
        log.warning("plot %s served but not stored: %s", key, exc.message)
        return drawn, False
    return drawn, True


def _encoded(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _number(field: str, raw: str) -> int:
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise ValidationError(field, f"must be an integer; got '{raw}'") from None


def _checkpoint(svc: Adapters, job: Job, epoch: str, plot: str) -> tuple[int, dict]:
    if job.task != CLASSIFICATION:
        raise ValidationError("task", f"a {job.task} job has no {plot} plot (classification only)")
    number = _number("epoch", epoch)
    record = svc.artifacts.get_json(
        layout.job_key(job.job_id, layout.epoch_file(number, layout.METRICS_JSON))
    )
    if not record:
        raise NotFound(f"Checkpoint of epoch {number} not found.")
    return number, record


def checkpoint_plot(
    svc: Adapters,
    job: jobs.Record,
    epoch: int,
    record: dict,
    kind: str,
    class_index: int = 0,
    until: float | None = None,
) -> bytes | None:
    """The JPEG of one plot of a checkpoint, drawn and stored on the first request; None when
    the checkpoint keeps no numbers for it."""
    job = Job.from_item(job)
    key = layout.job_key(job.job_id, layout.epoch_file(epoch, plots.plot_key(kind, class_index)))
    stored = svc.artifacts.get_bytes(key)
    if stored is not None:
        return stored
    data = None
    if plots.needs_plot_data(kind):
        data = svc.artifacts.get_json(
            layout.job_key(job.job_id, layout.epoch_file(epoch, layout.PLOT_DATA_JSON))
        )
        if data is None:
            return None
    numbers = plots.plot_input(kind, job.task, record, data, class_index)
    return _draw(svc, job.job_id, key, kind, numbers, until)[0]


def model_graph(svc: Adapters, job_id: str) -> dict[str, Any]:
    until = budget.deadline(svc.settings)
    jobs.get(svc, job_id, API)
    key = layout.job_key(job_id, layout.MODEL_GRAPH_PLOT)
    plot = svc.artifacts.get_bytes(key)
    if plot is None:
        numbers = svc.artifacts.get_json(layout.job_key(job_id, layout.MODEL_GRAPH_JSON))
        if numbers is None:
            raise NotFound("The model graph is drawn once the model is built; try again shortly.")
        plot = _draw(svc, job_id, key, plots.MODEL_GRAPH, plots.model_graph(numbers["lines"]), until)[0]
    return {"result": "OK", "base64_model_graph_plot": _encoded(plot)}


def _display(job: Job) -> int:
    """Batches per loss point: the job's (the API stores resolved arguments), else the default."""
    arg = params.argument(job.task, DISPLAY)
    value = (job.hyperparameters or {}).get(DISPLAY)
    return int(arg.validator(DISPLAY, value) if value is not None else arg.default_for(job.task, None))


def loss(svc: Adapters, job_id: str) -> dict[str, Any]:
    """Redrawn when the job has recorded more loss points than the stored JPEG shows."""
    until = budget.deadline(svc.settings)
    job = jobs.get(svc, job_id, API)
    losses = svc.artifacts.get_json(layout.job_key(job_id, layout.LOSSES)) or []
    key = layout.job_key(job_id, layout.LOSS_PLOT)
    source_key = layout.job_key(job_id, layout.LOSS_PLOT_SOURCE)
    source = plots.loss_source(losses, _display(job)) if losses else None
    # the stored JPEG is read only when it shows these points (or, with none, an older trainer's)
    stored = (
        svc.artifacts.get_bytes(key) if not losses or svc.artifacts.get_json(source_key) == source else None
    )
    if stored is None:
        if not losses:
            raise NotFound("The loss curve is drawn after the first epoch; try again then.")
        steps = svc.artifacts.get_json(layout.job_key(job_id, layout.LOSS_STEPS))
        numbers = plots.loss_input(losses, source["display"], steps)
        stored, kept = _draw(svc, job_id, key, plots.LOSS, numbers, until)
        if kept:  # the source names the points the stored JPEG shows: never without that JPEG
            try:
                svc.artifacts.put_json(source_key, source)
            except StorageFull as exc:
                log.warning("loss plot source of %s not stored: %s", job_id, exc.message)
    return {"result": "OK", "base64_loss_plot": _encoded(stored)}


def confusion_matrix(svc: Adapters, job_id: str, epoch: str) -> dict[str, Any]:
    until = budget.deadline(svc.settings)
    job = jobs.get(svc, job_id, API)
    number, record = _checkpoint(svc, job, epoch, "confusion matrix")
    plot = checkpoint_plot(svc, job, number, record, plots.CONFUSION_MATRIX, until=until)
    if plot is None:
        raise NotFound(f"Checkpoint of epoch {number} has no confusion matrix plot.")
    return {"result": "OK", "base64_confusion_matrix_plot": _encoded(plot)}


def threshold(svc: Adapters, job_id: str, epoch: str, class_index: str) -> dict[str, Any]:
    until = budget.deadline(svc.settings)
    job = jobs.get(svc, job_id, API)
    number, record = _checkpoint(svc, job, epoch, "threshold")
    index = _number("class", class_index)
    model = svc.artifacts.get_json(layout.job_key(job_id, layout.epoch_file(number, layout.MODEL_JSON))) or {}
    classes = len(model.get("class_names") or [])
    if not 0 <= index <= classes:
        raise ValidationError("class", f"must be in [0, {classes}] (0 is the mean over classes); got {index}")
    plot = checkpoint_plot(svc, job, number, record, plots.THRESHOLD, index, until)
    if plot is None:
        raise NotFound(f"Checkpoint of epoch {number} has no threshold plot of class {index}.")
    return {"result": "OK", "base64_threshold_plot": _encoded(plot)}
