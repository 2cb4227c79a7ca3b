"""Deploy, undeploy, list and infer: v1.5 checkpoints served from SageMaker endpoints (or
local model servers), through the HostingPlatform port.

A deployment is named after its job, epoch and device, so the same checkpoint may be
served on the CPU and on a GPU at once, and infer finds it without a table of its own.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import Any

from chalicelib import aws_limits, tenancy
from chalicelib.errors import (
    Conflict,
    DomainError,
    NotFound,
    StillComputing,
    StorageFull,
    Unavailable,
    ValidationError,
)
from chalicelib.job_record import Job
from chalicelib.ports import IN_SERVICE, Adapters, Deployment, DeploymentCapReached
from chalicelib.services import budget, data_roots
from chalicelib.settings import Settings
from chalicelib.v15 import forms, image_input
from contracts import layout
from contracts.v15_literals import parse_bool, parse_float, parse_int, parse_literal, quote

log = logging.getLogger(__name__)
DEPLOY_ROUTE = "POST /api/v1.5.0/deploy/{job_id} (task, epoch, target_device_id)"


class ModelServerError(DomainError):
    """The model server refused or failed a request; its status and message pass through."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status_code = status if 400 <= status < 500 else 502


def deployment_name(job: Mapping[str, Any], epoch: int, device: int) -> str:
    """SageMaker names (<= 63 of [a-zA-Z0-9-]): the job's name, the epoch, the device."""
    return f"{Job.from_item(job).job_name}-e{epoch}-{'cpu' if device < 0 else f'gpu{device}'}"


def _hosting(svc: Adapters):
    if svc.hosting is None:
        raise Unavailable("This stage has no hosting platform configured.")
    return svc.hosting


def _device(svc: Adapters, form: dict[str, str]) -> int:
    if "target_device_id" not in form:
        raise ValidationError("target_device_id", "required")
    device = parse_int("target_device_id", form["target_device_id"])
    count = _hosting(svc).device_count()
    if device != -1 and not 0 <= device < count:
        allowed = "-1 (CPU)" + (f" or a GPU index in [0, {count})" if count else "; this platform has no GPU")
        raise ValidationError("target_device_id", f"must be {allowed}; got {device}")
    return device


def _available_checkpoint(svc: Adapters, job: Job, epoch: int) -> None:
    if (
        svc.artifacts.get_bytes(layout.job_key(job.job_id, layout.epoch_file(epoch, layout.METRICS_JSON)))
        is None
    ):
        raise NotFound(f"Checkpoint of epoch {epoch} not found.")
    if svc.artifacts.get_bytes(layout.job_key(job.job_id, layout.epoch_file(epoch, layout.WEIGHTS))) is None:
        raise ValidationError(
            "epoch", f"the checkpoint of epoch {epoch} has no weights (pruned by max_num_checkpoints)"
        )


# --- deploy / undeploy / list -------------------------------------------------------------
CAP_SETTING = "AIFACTORY_MAX_DEPLOYMENTS"
UNDEPLOY_ROUTE = "DELETE /api/v1.5.0/deploy/<job_id> (epoch, target_device_id)"


def _device_text(device: int) -> str:
    return "CPU (-1)" if device < 0 else f"GPU {device}"


def _cap_message(full: DeploymentCapReached) -> str:
    """Names the cap, its setting and every live deployment, so the caller knows what to undeploy."""
    live = "; ".join(
        f"job {d.job_id} epoch {d.epoch} on {_device_text(d.target_device_id)} ({d.status})"
        for d in full.live
    )
    return (
        f"Deployment refused: {len(full.live)} deployments are live and the cap is {full.limit} "
        f"({CAP_SETTING}). Undeploy one first with {UNDEPLOY_ROUTE}. Live: {live}."
    )


def deploy(svc: Adapters, job_id: str, form: dict[str, str]) -> dict[str, str]:
    """Starts a model server (a SageMaker endpoint on AWS) for the checkpoint. Each one holds a
    model in memory or a billed instance, so at most AIFACTORY_MAX_DEPLOYMENTS are live at once:
    past it the deploy is refused with 409 (a conflict with the current state that undeploying
    resolves; not 429, which clients retry on their own to no effect), and nothing is started.
    A redeploy of a live deployment is not a new one: it gets "already exists", cap or not."""
    job = forms.job(svc, job_id, form)
    if "task" not in form:
        raise ValidationError("task", "required")
    epoch, device = forms.epoch(form), _device(svc, form)
    _available_checkpoint(svc, job, epoch)
    uri = forms.checkpoint_uri(svc, job_id, epoch)
    try:
        _hosting(svc).deploy(
            Deployment(
                deployment_name(job, epoch, device), job_id, epoch, device, job.task, uri,
                tenant=tenancy.owner(job),
            ),
            max_live=tenancy.current().limit("max_deployments", svc.settings.max_deployments),
        )  # fmt: skip
    except DeploymentCapReached as full:
        raise Conflict(_cap_message(full)) from None
    return {"result": "OK"}


def _memory_text(size: int | None) -> str | None:
    """`memory_bytes` for people: '812.4 MiB', '16.0 GiB'."""
    if size is None:
        return None
    units = ("B", "KiB", "MiB", "GiB", "TiB")
    value, index = float(size), 0
    while value >= 1024 and index < len(units) - 1:
        value, index = value / 1024, index + 1
    return f"{size} B" if index == 0 else f"{value:.1f} {units[index]}"


def undeploy(svc: Adapters, job_id: str, form: dict[str, str]) -> dict[str, str]:
    job = forms.job(svc, job_id, form)
    epoch, device = forms.epoch(form), parse_int("target_device_id", form.get("target_device_id", "None"))
    try:
        _hosting(svc).undeploy(deployment_name(job, epoch, device))
    except NotFound:
        raise NotFound(f"Checkpoint of epoch {epoch} is not deployed on device {device}.") from None
    return {"result": "OK"}


def undeploy_all(svc: Adapters, job_id: str) -> None:
    """Clearing a job takes its deployments with it: nothing keeps serving a deleted model."""
    if svc.hosting is None:
        return
    for deployment in svc.hosting.list():
        if deployment.job_id == job_id:
            svc.hosting.undeploy(deployment.name)


def list_deployments(svc: Adapters) -> dict[str, Any]:
    return {
        "result": "OK",
        "deployments": [
            {
                "job_id": d.job_id,
                "epoch": d.epoch,
                "target_device_id": d.target_device_id,
                "status": d.status,
                **({"failure_reason": d.failure_reason} if d.failure_reason else {}),
                # What it holds (beyond the spec; fields added, none changed): the process tree's
                # resident memory locally, the endpoint instance's memory on AWS (null if unknown).
                "instance_type": d.instance_type,
                "memory_bytes": d.memory_bytes,
                "memory": _memory_text(d.memory_bytes),
            }
            for d in _hosting(svc).list()
            if tenancy.current().sees_all or d.tenant == tenancy.current().id
        ],
    }


# --- infer -----------------------------------------------------------------------------------
def _serving(svc: Adapters, job: Job, epoch: int) -> Deployment:
    """A deployment of the job's epoch, InService ones first (any device will do)."""
    candidates = [d for d in _hosting(svc).list() if d.job_id == job.job_id and d.epoch == epoch]
    if not candidates:
        raise NotFound(
            f"Checkpoint of epoch {epoch} of job {job.job_id} is not deployed; "
            f"deploy it first with {DEPLOY_ROUTE.format(job_id=job.job_id)}."
        )
    candidates.sort(key=lambda d: d.status != IN_SERVICE)
    return candidates[0]


def _thresholds(form: dict[str, str]) -> tuple[float, float]:
    low = parse_float("lower_prob_thresh", form.get("lower_prob_thresh", "0.7"), "a number in [0, 1]")
    high = parse_float("upper_prob_thresh", form.get("upper_prob_thresh", "1.0"), "a number in [0, 1]")
    for name, value in (("lower_prob_thresh", low), ("upper_prob_thresh", high)):
        if not 0 <= value <= 1:
            raise ValidationError(name, f"must be a number in [0, 1]; got {value}")
    if low > high:
        raise ValidationError("lower_prob_thresh", f"must be at most upper_prob_thresh ({high}); got {low}")
    return low, high


def custom_attributes(low: float, high: float, images: bool) -> str:
    """infer's arguments as InvokeEndpoint's CustomAttributes (`inference.decode` reads them)."""
    return f"lower_prob_thresh={low!r},upper_prob_thresh={high!r},returns_images={str(bool(images)).lower()}"


def _invoke(
    svc: Adapters, deployment: Deployment, image: bytes, low: float, high: float, images: bool
) -> dict:
    """One image through the deployment. The image travels as it is (`ContentType` image/jpeg
    or image/png, the arguments in CustomAttributes), not base64 in JSON: a third smaller, so
    any image up to InvokeEndpoint's 6 MB body reaches the endpoint. The model server still
    takes the older JSON form (`{"base64_image": ...}`) from other callers."""
    content_type = image_input.image_size(image)[0]  # checked already: a JPEG or a PNG
    status, answer = _hosting(svc).invoke(
        deployment.name, image, content_type, custom_attributes(low, high, images)
    )
    try:
        decoded = json.loads(answer)
    except (json.JSONDecodeError, UnicodeDecodeError):
        decoded = {"message": answer[:200].decode(errors="replace")}
    if status != 200 or not isinstance(decoded, dict) or decoded.get("result") != "OK":
        message = decoded.get("message") if isinstance(decoded, dict) else None
        raise ModelServerError(
            status if status != 200 else 502, message or f"The model server answered HTTP {status}."
        )
    return decoded


def image_limits(config: Settings) -> tuple[int, int]:
    """(largest image by path_to_image or a pattern, largest base64_image), in bytes, both
    within what reaches the endpoint: an image goes to it as it is, so a path may name up to
    InvokeEndpoint's 6 MB; a base64_image comes in the request body, inside Lambda's 6 MB
    event, so about 4.4 MB (chalicelib.aws_limits). Settings above those are held to them
    unless the AWS limits are relaxed (debugging on the local stage)."""
    by_path = config.max_image_bytes
    if not config.relax_aws_limits:
        by_path = min(by_path, aws_limits.MAX_IMAGE_BYTES)
    return by_path, min(by_path, config.max_base64_image_bytes)


def _image_source(config: Settings, form: dict[str, str]) -> tuple[str, str | bytes]:
    """The image a form names, checked without touching the disk: ("base64_image", bytes) or
    ("path_to_image", an allowed location), so a bad form is a 400 before anything else."""
    given = [
        name for name in ("path_to_image", "base64_image") if form.get(name, "").strip() not in ("", "None")
    ]
    if len(given) != 1:
        raise ValidationError(
            "path_to_image",
            "exactly one of path_to_image and base64_image must have a value"
            + ("; got both" if len(given) == 2 else ""),
        )
    if given[0] == "base64_image":
        limit = image_limits(config)[1]
        why = aws_limits.image_limit_reason("base64_image", limit)
        data = image_input.decode_base64("base64_image", form["base64_image"], limit, why)
        image_input.check_image("base64_image", data, limit, config.max_image_pixels, why)
        return given[0], data
    return given[0], image_input.check_location(
        "path_to_image",
        form["path_to_image"],
        local=config.is_local,
        roots=data_roots.for_images(config),
        home=config.home,
    )


def _image(svc: Adapters, field: str, source: str | bytes) -> bytes:
    if isinstance(source, bytes):
        return source  # checked with the form
    limit = image_limits(svc.settings)[0]
    why = aws_limits.image_limit_reason(field, limit)
    try:
        data = svc.data.read(source, limit)
    except ValidationError as refused:  # the store's "is N bytes; at most M": say why M
        if f" {limit} " not in f" {refused.problem} ":
            raise
        raise ValidationError(refused.field, f"{refused.problem}: {why}") from None
    image_input.check_image(field, data, limit, svc.settings.max_image_pixels, why)
    return data


def infer(svc: Adapters, job_id: str, form: dict[str, str]) -> dict[str, Any]:
    job = forms.job(svc, job_id, form)
    epoch = forms.epoch(form)
    low, high = _thresholds(form)
    images = parse_bool("returns_images", form.get("returns_images", "True"))
    field, source = _image_source(svc.settings, form)
    deployment = _serving(svc, job, epoch)  # a 404 before any file is read
    return _invoke(svc, deployment, _image(svc, field, source), low, high, images)


def _patterns(form: dict[str, str]) -> list[str]:
    raw = form.get("path_to_image_pattern_list")
    if raw is None or not raw.strip():
        raise ValidationError("path_to_image_pattern_list", "required")
    parsed = parse_literal("path_to_image_pattern_list", raw) if raw.strip()[:1] in "[(" else [raw]
    if (
        not isinstance(parsed, (list, tuple))
        or not parsed
        or not all(isinstance(p, str) and p for p in parsed)
    ):
        raise ValidationError(
            "path_to_image_pattern_list", f"must be a non-empty list of path patterns; got {quote(raw)}"
        )
    if any(".." in p.replace("\\", "/").split("/") for p in parsed):
        raise ValidationError("path_to_image_pattern_list", "patterns may not contain '..'")
    return list(parsed)


def infer_multiple(svc: Adapters, job_id: str, form: dict[str, str]) -> dict[str, Any]:
    """Each image one invocation, at most AIFACTORY_INFER_CONCURRENCY in flight, for at most
    the synchronous budget: past it, 503 "retry" (Retry-After) while each answered image is
    kept (`_answer_key`), so the retry asks only for the others."""
    until = budget.deadline(svc.settings)
    config = svc.settings
    job = forms.job(svc, job_id, form)
    epoch = forms.epoch(form)
    low, high = _thresholds(form)
    patterns = _patterns(form)
    deployment = _serving(svc, job, epoch)  # a 404 before any directory is walked
    roots = data_roots.for_images(config)
    paths: list[str] = []
    for pattern in patterns:
        location = image_input.check_location(
            "path_to_image_pattern_list", pattern, local=config.is_local, roots=roots, home=config.home
        )
        matches = (
            svc.data.glob(location, config.max_infer_images)
            if any(c in pattern for c in "*?[")
            else [location]
        )
        for match in matches:
            image_input.check_location(
                "path_to_image_pattern_list", match, local=config.is_local, roots=roots, home=config.home
            )
            paths.append(match)
        if len(paths) > config.max_infer_images:
            raise ValidationError(
                "path_to_image_pattern_list",
                f"matches more than {config.max_infer_images} images (AIFACTORY_MAX_INFER_IMAGES); narrow the patterns",
            )
    if not paths:
        raise ValidationError("path_to_image_pattern_list", "matches no image")

    def one(path: str) -> dict[str, Any]:
        data = svc.data.read(path, config.max_image_bytes)
        image_input.check_image(path, data, config.max_image_bytes, config.max_image_pixels)
        key = _answer_key(job_id, deployment, data, low, high)
        body = svc.artifacts.get_json(key)
        if not isinstance(body, dict):
            body = _invoke(svc, deployment, data, low, high, False)
            _keep(svc, key, body)
        return {"path": path, **{k: v for k, v in body.items() if k not in ("result", "base64_images")}}

    # in pattern order, each pattern's matches sorted
    return {"result": "OK", "images": _each_within(one, paths, config.infer_concurrency, until, config.sync_budget_seconds)}


INFER_ANSWERS = "infer_multiple"  # under the job's prefix: removed with the job
INFER_RETRY_AFTER_S = 1  # what was in flight goes on; the retry asks only for what is left


def _answer_key(job_id: str, deployment: Deployment, image: bytes, low: float, high: float) -> str:
    """Where one image's answer waits for a retry: by deployment, image bytes and thresholds."""
    image_hash = hashlib.sha256(image).hexdigest()
    ask = hashlib.sha256(f"{deployment.name}|{image_hash}|{low!r}|{high!r}".encode()).hexdigest()[:40]
    return layout.job_key(job_id, f"{INFER_ANSWERS}/{ask}.json")


def _keep(svc: Adapters, key: str, body: dict[str, Any]) -> None:
    try:
        svc.artifacts.put_json(key, body)
    except StorageFull as exc:  # answered all the same; only a retry would ask again
        log.warning("infer_multiple answer %s not kept: %s", key, exc.message)


def _each_within(one, items: list, workers: int, until: float, budget_s: float) -> list:
    """`one` of each item, `workers` at a time, until `until` (`time.monotonic()`): the answers
    in order; the first failure as it is; StillComputing when time ran out first (what is in
    flight finishes and is kept; what has not started is not started). `budget_s`: the
    synchronous budget `until` was set from, named in the 503."""
    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="infer_multiple")
    futures = [pool.submit(one, item) for item in items]
    try:
        done, pending = wait(futures, timeout=max(0.0, budget.left(until)), return_when=FIRST_EXCEPTION)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    for future in futures:
        if future in done and future.exception() is not None:
            raise future.exception()
    if pending:
        raise StillComputing(
            f"infer_multiple answered {len(done)} of {len(futures)} images within the {budget_s:g} s "
            f"budget; the others are still being computed; retry in {INFER_RETRY_AFTER_S} s "
            "(answered images are kept and not asked again).",
            INFER_RETRY_AFTER_S,
        )
    return [future.result() for future in futures]
