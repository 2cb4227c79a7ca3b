"""The files of one v1.5 checkpoint, and an AI Factory job's model, for the dashboard's
download links.

The v1.5 spec has no route that hands out a checkpoint's files, yet a user comparing runs
wants the weights of the one they picked. Only the files a checkpoint directory is made of
and that are safe to hand out are offered (weights as safetensors, the model and metrics
JSON); the trainer-only resume state is not. The job is looked up as the caller's tenant, so
another tenant's job is the same 404 as a missing one.

Weights outgrow Lambda's 6 MB answer (resnet18's are 45 MB). On AWS the route answers a
presigned S3 link; where the store has none (the local stage, which keeps Lambda's limits)
it answers the file a part at a time (`offset`, `Content-Range`), each part small enough to
travel base64-encoded, and the page joins the parts.
"""

from __future__ import annotations

from typing import Any

from chalicelib.ai_factory import service as ai_factory
from chalicelib.aws_limits import LAMBDA_MAX_RESPONSE_BYTES
from chalicelib.errors import NotFound, ValidationError
from chalicelib.ports import Adapters
from chalicelib.services import jobs
from contracts import layout

API = "v1.5"
FILES = {
    layout.WEIGHTS: "application/octet-stream",
    layout.MODEL_JSON: "application/json",
    layout.METRICS_JSON: "application/json",
    layout.SUMMARY_JSON: "application/json",
}
# A part, base64-encoded as Lambda's proxy output carries bytes, stays well under its 6 MB.
PART_BYTES = (LAMBDA_MAX_RESPONSE_BYTES // 2 // 1024 // 1024) * 1024 * 1024 or 1024 * 1024


def checkpoint_file(
    svc: Adapters, job_id: str, epoch: str, name: str, offset: str | None = None
) -> dict[str, Any]:
    """`{"url": ...}` where the store can presign one (S3: the bytes never pass through the
    Lambda's 6 MB answer), else `{"data", "start", "end", "total"}`: the part of the file
    from byte `offset` (the local stage's directory store)."""
    if name not in FILES:
        raise ValidationError("name", f"must be one of {', '.join(sorted(FILES))}; got '{name}'")
    try:
        number = int(epoch)
    except ValueError:
        raise ValidationError("epoch", f"must be an integer; got '{epoch}'") from None
    start = _offset(offset)
    job = jobs.get(svc, job_id, API)
    key = layout.job_key(job.job_id, layout.epoch_file(number, name))
    # A presigned URL does not say whether the object exists: look first, so a pruned
    # checkpoint is a 404 here rather than the store's error behind a link.
    if key not in set(svc.artifacts.list_keys(key.rsplit("/", 1)[0] + "/")):
        raise NotFound(f"Epoch {number} of job {job_id} has no {name} (pruned, or not written yet).")
    url = svc.artifacts.download_url(key)
    if url:
        return {"url": url}
    data = svc.artifacts.get_bytes(key)
    if data is None:
        raise NotFound(f"Epoch {number} of job {job_id} has no {name}.")
    return _part(data, start, offset)


def model_file(svc: Adapters, job_name: str, offset: str | None = None) -> dict[str, Any]:
    """An AI Factory job's model.tar.gz (what the callback's link serves), as above: a
    presigned link on AWS, else the part from byte `offset`."""
    start = _offset(offset)
    _key, data, url = ai_factory.model_artifact(svc, job_name)
    if url:
        return {"url": url}
    return _part(data or b"", start, offset)


def _offset(offset: str | None) -> int:
    try:
        start = int(offset or 0)
    except ValueError:
        raise ValidationError("offset", f"must be a byte offset (an integer); got '{offset}'") from None
    if start < 0:
        raise ValidationError("offset", f"must be 0 or more; got '{offset}'")
    return start


def _part(data: bytes, start: int, offset: str | None) -> dict[str, Any]:
    if start and start >= len(data):
        raise ValidationError("offset", f"must be below the file's {len(data)} bytes; got '{offset}'")
    part = data[start : start + PART_BYTES]
    return {"data": part, "start": start, "end": start + len(part) - 1, "total": len(data)}
