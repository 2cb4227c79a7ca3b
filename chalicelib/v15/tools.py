"""summarize, visualize, aug preview and upgrade.

The first three are torch-bound and run in the trainer image through the ToolRunner port
(contracts.tools), inside the synchronous budget (chalicelib/v15/tool_jobs.py: work that
does not finish in time answers 503 "retry" and is cached for the retry); upgrade migrates
a job's artifact layout (contracts.layout) and needs no torch, so the API does it itself.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from chalicelib import limits
from chalicelib.errors import NotFound, ValidationError
from chalicelib.job_record import Job
from chalicelib.ports import Adapters
from chalicelib.security import check_data_location
from chalicelib.services import budget, jobs
from chalicelib.v15 import forms, tool_jobs
from chalicelib.v15.tool_jobs import ToolError  # noqa: F401 - re-exported: the tool's own failure
from contracts import layout, tools
from contracts import v15_arguments as params
from contracts.v15_literals import parse_int, quote

RCNN_TASKS = ("detection", "instance_segmentation")


def run_tool(
    svc: Adapters,
    request: dict[str, Any],
    prefix: str = tool_jobs.STAGE_PREFIX,
    *,
    until: float | None = None,
    keep: bool = False,
) -> dict[str, Any]:
    """The tool's answer within the budget (tool_jobs.run): StillComputing past it."""
    return tool_jobs.run(svc, request, prefix, until=until, keep=keep)


def _job_and_epoch(svc: Adapters, job_id: str, form: dict[str, str]) -> tuple[dict[str, Any], int]:
    job = forms.job(svc, job_id, form, task_required=True)
    epoch = forms.epoch(form)
    if svc.artifacts.get_bytes(layout.job_key(job_id, layout.epoch_file(epoch, layout.METRICS_JSON))) is None:
        raise NotFound(f"Checkpoint of epoch {epoch} not found.")
    return job, epoch


def summarize(svc: Adapters, job_id: str, form: dict[str, str]) -> dict[str, Any]:
    """The trainer measured FLOPs (torch's FlopCounterMode) when it wrote the checkpoint; a
    checkpoint without summary.json (an older trainer's) is measured in the trainer image, and
    the measure kept beside the job for the next request (a checkpoint never changes)."""
    until = budget.deadline(svc.settings)
    _, epoch = _job_and_epoch(svc, job_id, form)
    summary = svc.artifacts.get_json(layout.job_key(job_id, layout.epoch_file(epoch, layout.SUMMARY_JSON)))
    if not summary:
        request = tools.request(tools.SUMMARIZE, checkpoint_uri=forms.checkpoint_uri(svc, job_id, epoch))
        summary = run_tool(svc, request, tool_jobs.job_prefix(job_id), until=until, keep=True)
    return {
        "result": "OK",
        "flops": summary["flops"],
        "params": summary["params"],
        "param_keys": summary["param_keys"],
    }


def visualize(svc: Adapters, job_id: str, form: dict[str, str]) -> dict[str, Any]:
    """A parameter of a checkpoint drawn in the trainer image; kept for the next request."""
    until = budget.deadline(svc.settings)
    _, epoch = _job_and_epoch(svc, job_id, form)
    key = (form.get("param_key") or "").strip()
    if not key:
        raise ValidationError("param_key", "required")
    uri = forms.checkpoint_uri(svc, job_id, epoch)
    request = tools.request(tools.VISUALIZE, checkpoint_uri=uri, param_key=key)
    answer = run_tool(svc, request, tool_jobs.job_prefix(job_id), until=until, keep=True)
    return {"result": "OK", "base64_image": answer["base64_image"]}


def aug_preview(svc: Adapters, form: dict[str, str]) -> dict[str, Any]:
    """An augmented sample of a data directory, drawn in the trainer image. Its answer waits
    under the stage's tools prefix for the retry only (the directory may change)."""
    until = budget.deadline(svc.settings)
    config = svc.settings
    task = (form.get("task") or "").strip()
    if task not in params.TASKS:
        raise ValidationError("task", f"must be one of {{{', '.join(params.TASKS)}}}; got {quote(task)}")
    data_dir = check_data_location(
        "data_dir", form.get("data_dir", ""), local=config.is_local, roots=config.data_roots, home=config.home
    )
    if "index" not in form:
        raise ValidationError("index", "required")
    index = parse_int("index", form["index"], "an integer >= 0")
    if index < 0:
        raise ValidationError("index", f"must be an integer >= 0; got {index}")
    seed = parse_int("seed", form.get("seed", "0"))
    hyperparameters = params.resolve_preview_args(task, form)
    limits.check_v15_arguments(config, hyperparameters)
    request = tools.request(
        tools.AUG_PREVIEW,
        data_uri=data_dir,
        task=task,
        index=index,
        hyperparameters=hyperparameters,
        seed=seed,
    )
    return {"result": "OK", "base64_aug_image": run_tool(svc, request, until=until)["base64_aug_image"]}


# --- upgrade ---------------------------------------------------------------------------------
def _migrate_1_to_2(svc: Adapters, job: Job) -> None:
    """model.json names its normalisation: what `needs_freeze_bn` meant for R-CNNs before GroupNorm."""
    if job.task not in RCNN_TASKS:
        return
    prefix = layout.job_key(job.job_id, layout.CHECKPOINTS) + "/"
    for key in list(svc.artifacts.list_keys(prefix)):
        found = layout.parse_epoch_key(key)
        if not found or found[1] != layout.MODEL_JSON:
            continue
        model = svc.artifacts.get_json(key) or {}
        hp = model.setdefault("hyperparameters", {})
        if "rcnn_norm" not in hp:
            hp["rcnn_norm"] = "frozen_batch" if hp.get("needs_freeze_bn") else "batch"
            svc.artifacts.put_json(key, model)


MIGRATIONS = {1: _migrate_1_to_2}


def upgrade(svc: Adapters, job_id: str, form: dict[str, str]) -> dict[str, Any]:
    job = forms.job(svc, job_id, form)
    version = int(job.format_version or 0)
    if version >= layout.FORMAT_VERSION:
        return {"result": "OK", "upgraded": False, "exception": None}
    if version < layout.OLDEST_UPGRADABLE:
        oldest = layout.VERSION_NAMES[layout.OLDEST_UPGRADABLE]
        return {
            "result": "OK",
            "upgraded": False,
            "exception": {"type": "ValueError", "message": f"The version under {oldest} is not upgradable."},
        }
    if job.status not in ("Completed", "Failed", "Stopped"):
        raise ValidationError("job_id", "a job is upgraded when it is not running; stop it first")
    while version < layout.FORMAT_VERSION:
        MIGRATIONS[version](svc, job)
        version += 1
    job_config = jobs.read_config(svc, job_id)
    if job_config is not None:  # job.json names the layout its artifacts now have
        jobs.write_config(svc, dataclasses.replace(job_config, format_version=version))
    svc.jobs.update(job_id, {"format_version": version})
    return {"result": "OK", "upgraded": True, "exception": None}
