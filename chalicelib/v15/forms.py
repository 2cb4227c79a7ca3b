"""What a v1.5 form names that several routes share: the job (its task must match when
given), the epoch, and where that epoch's checkpoint lives."""

from __future__ import annotations

from chalicelib.errors import ValidationError
from chalicelib.job_record import Job
from chalicelib.ports import Adapters
from chalicelib.services import jobs
from contracts import layout
from contracts.api_names import V15 as API
from contracts.v15_literals import parse_int, quote


def job(svc: Adapters, job_id: str, form: dict[str, str], task_required: bool = False) -> Job:
    found = jobs.get(svc, job_id, API)
    task = form.get("task")
    if task is None and task_required:
        raise ValidationError("task", "required")
    if task is not None and task.strip() != found.task:
        raise ValidationError("task", f"the job's task is '{found.task}'; got {quote(task)}")
    return found


def epoch(form: dict[str, str]) -> int:
    if "epoch" not in form:
        raise ValidationError("epoch", "required")
    number = parse_int("epoch", form["epoch"], "an integer >= 1")
    if number < 1:
        raise ValidationError("epoch", f"must be an integer >= 1; got {number}")
    return number


def checkpoint_uri(svc: Adapters, job_id: str, number: int) -> str:
    """The self-contained `checkpoints/epoch-<N>/` directory: a local path or an s3:// prefix."""
    return f"{svc.artifacts.job_uri(job_id).rstrip('/')}/{layout.epoch_dir(number)}"
