"""AI Factory routes (spec/ai-factory-api.md). Each view reads, calls one service, returns."""

from __future__ import annotations

from chalice import Blueprint, Response

from chalicelib import tenancy
from chalicelib.ai_factory import service
from chalicelib.services import model_links
from chalicelib.web.api_app import any_accept
from chalicelib.web.envelopes import ai_factory_errors
from chalicelib.web.request_body import CONTENT_TYPES, read_json
from chalicelib.wiring import adapters

bp = Blueprint(__name__)


def public_url(request) -> str:
    configured = adapters().settings.public_url
    if configured:
        return configured
    context = request.context or {}
    domain, stage = context.get("domainName"), context.get("stage")
    return f"https://{domain}/{stage}" if domain and stage else ""


@bp.route("/create_training_job", methods=["POST"], api_key_required=True, content_types=CONTENT_TYPES)
@ai_factory_errors
def create_training_job():
    request = bp.current_request
    return service.create_training_job(adapters(), read_json(request), public_url(request))


@bp.route("/check_trained_job", methods=["POST", "GET"], api_key_required=True, content_types=CONTENT_TYPES)
@ai_factory_errors
def check_trained_job():
    request = bp.current_request  # paging: `limit`, `next_token` in the query or the body
    params = dict(request.query_params or {})
    if request.method == "POST" and (request.raw_body or b"").strip():
        body = read_json(request)
        params.update(body if isinstance(body, dict) else {})
    return service.list_training_jobs(adapters(), params)


@bp.route("/status", methods=["POST"], api_key_required=True, content_types=CONTENT_TYPES)
@ai_factory_errors
def training_status():
    return service.training_status(adapters(), read_json(bp.current_request))


@bp.route("/stop_training_job", methods=["POST"], api_key_required=True, content_types=CONTENT_TYPES)
@ai_factory_errors
def stop_training_job():
    return service.stop_training_job(adapters(), read_json(bp.current_request))


@bp.route("/logs", methods=["POST"], api_key_required=True, content_types=CONTENT_TYPES)
@ai_factory_errors
def training_logs():
    return service.training_logs(adapters(), read_json(bp.current_request))


SIGNED_MODEL_ROUTE = "/models/{job_name}/signed"


@bp.route(SIGNED_MODEL_ROUTE, methods=["GET"], api_key_required=False)
@any_accept
@ai_factory_errors
def download_model_signed(job_name):
    """The callback's link: a plain GET downloads until it expires, like an S3 presigned URL (no API key, any Accept or none)."""
    # urllib and Go's net/http send no Accept. On AWS this redirects to S3; on the local stage it
    # serves the file whatever the Accept (`chalicelib.web.api_app` says why that is right on both).
    model_links.check(adapters().settings, job_name, bp.current_request.query_params)
    with tenancy.acting_as(tenancy.SYSTEM):  # the signature is the authority, for this one job
        return _model_response(job_name)


@bp.route("/models/{job_name}", methods=["GET"], api_key_required=True)
@ai_factory_errors
def download_model(job_name):
    return _model_response(job_name)


def _model_response(job_name: str) -> Response:
    key, data, url = service.model_artifact(adapters(), job_name)
    if url:
        return Response(body="", status_code=302, headers={"Location": url})
    return Response(
        body=data,
        status_code=200,
        headers={
            "Content-Type": "application/gzip",
            "Content-Disposition": f'attachment; filename="{job_name}-model.tar.gz"',
        },
    )
