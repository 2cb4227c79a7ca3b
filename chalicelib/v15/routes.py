"""v1.5 routes (spec/v1.5-web-api.md): form-encoded arguments, `{"result": ...}` bodies."""

from __future__ import annotations

from chalice import Blueprint, Response

from chalicelib.v15 import answer_size, deployments, disk_space, plots, service, tools
from chalicelib.web.envelopes import v15_errors
from chalicelib.web.request_body import CONTENT_TYPES, MAX_IMAGE_BODY, read_fields
from chalicelib.wiring import adapters

bp = Blueprint(__name__)
BASE = f"/api/{service.VERSION}"
TRAIN_JOB = BASE + "/train/{job_id}"


@bp.route("/api/version", methods=["GET"], api_key_required=True)
def version():
    return Response(body=service.VERSION, status_code=200, headers={"Content-Type": "text/plain"})


@bp.route(BASE + "/environment", methods=["GET"], api_key_required=True)
@v15_errors
def environment():
    return service.environment(adapters())


@bp.route(BASE + "/devices", methods=["GET"], api_key_required=True)
@v15_errors
def devices():
    return service.devices(adapters())


@bp.route(BASE + "/train", methods=["GET"], api_key_required=True)
@v15_errors
def list_jobs():
    return service.list_jobs(adapters(), dict(bp.current_request.query_params or {}))  # limit, next_token


@bp.route(BASE + "/train", methods=["POST"], api_key_required=True, content_types=CONTENT_TYPES)
@v15_errors
def train():
    return service.start_training(adapters(), read_fields(bp.current_request))


@bp.route(TRAIN_JOB, methods=["PATCH"], api_key_required=True, content_types=CONTENT_TYPES)
@v15_errors
def stop(job_id):
    return service.stop(adapters(), job_id)


@bp.route(TRAIN_JOB, methods=["PUT"], api_key_required=True, content_types=CONTENT_TYPES)
@v15_errors
def restore(job_id):
    return service.restore(adapters(), job_id)


@bp.route(TRAIN_JOB, methods=["DELETE"], api_key_required=True, content_types=CONTENT_TYPES)
@v15_errors
def clear(job_id):
    return service.clear(adapters(), job_id)


@bp.route(TRAIN_JOB + "/reclaim", methods=["POST"], api_key_required=True, content_types=CONTENT_TYPES)
@v15_errors
def reclaim(job_id):
    return disk_space.reclaim(adapters(), job_id)


@bp.route(TRAIN_JOB, methods=["GET"], api_key_required=True)
@v15_errors
def monitor(job_id):
    return service.monitor(adapters(), job_id)


@bp.route(TRAIN_JOB + "/hyper-parameters", methods=["GET"], api_key_required=True)
@v15_errors
def hyper_parameters(job_id):
    return service.hyper_parameters(adapters(), job_id)


@bp.route(TRAIN_JOB + "/losses", methods=["GET"], api_key_required=True)
@v15_errors
def losses(job_id):
    return service.losses(adapters(), job_id)


@bp.route(TRAIN_JOB + "/checkpoints", methods=["GET"], api_key_required=True)
@v15_errors
def checkpoints(job_id):
    return service.checkpoints(adapters(), job_id)


@bp.route(TRAIN_JOB + "/checkpoints/epoch/{epoch}", methods=["GET"], api_key_required=True)
@v15_errors
def checkpoint(job_id, epoch):
    return service.checkpoint(adapters(), job_id, epoch, dict(bp.current_request.query_params or {}))


@bp.route(TRAIN_JOB + "/logs", methods=["GET"], api_key_required=True)
@v15_errors
def logs(job_id):
    return service.logs(adapters(), job_id, bp.current_request.query_params or {})


# --- plots -------------------------------------------------------------------------------------
@bp.route(TRAIN_JOB + "/plots/model-graph", methods=["GET"], api_key_required=True)
@v15_errors
def model_graph_plot(job_id):
    return plots.model_graph(adapters(), job_id)


@bp.route(TRAIN_JOB + "/plots/loss", methods=["GET"], api_key_required=True)
@v15_errors
def loss_plot(job_id):
    return plots.loss(adapters(), job_id)


@bp.route(TRAIN_JOB + "/plots/confusion-matrix/epoch/{epoch}", methods=["GET"], api_key_required=True)
@v15_errors
def confusion_matrix_plot(job_id, epoch):
    return plots.confusion_matrix(adapters(), job_id, epoch)


@bp.route(
    TRAIN_JOB + "/plots/threshold/epoch/{epoch}/class/{class_index}", methods=["GET"], api_key_required=True
)
@v15_errors
def threshold_plot(job_id, epoch, class_index):
    return plots.threshold(adapters(), job_id, epoch, class_index)


# --- serving -----------------------------------------------------------------------------------
@bp.route(BASE + "/deploy/list", methods=["GET"], api_key_required=True)
@v15_errors
def list_deployments():
    """Each deployment also says what it holds: `instance_type` (AWS), `memory_bytes` and `memory`
    (the server's resident memory locally, the endpoint instance's on AWS; null when unknown)."""
    return deployments.list_deployments(adapters())


@bp.route(BASE + "/deploy/{job_id}", methods=["POST"], api_key_required=True, content_types=CONTENT_TYPES)
@v15_errors
def deploy(job_id):
    """409 when AIFACTORY_MAX_DEPLOYMENTS deployments are live: the message names the cap and the
    live deployments to undeploy first; nothing is started."""
    return deployments.deploy(adapters(), job_id, read_fields(bp.current_request))


@bp.route(BASE + "/deploy/{job_id}", methods=["DELETE"], api_key_required=True, content_types=CONTENT_TYPES)
@v15_errors
def undeploy(job_id):
    return deployments.undeploy(adapters(), job_id, read_fields(bp.current_request))


@bp.route(BASE + "/infer/{job_id}", methods=["POST"], api_key_required=True, content_types=CONTENT_TYPES)
@v15_errors
def infer(job_id):
    return deployments.infer(adapters(), job_id, read_fields(bp.current_request, MAX_IMAGE_BODY))


@bp.route(
    BASE + "/infer_multiple/{job_id}", methods=["POST"], api_key_required=True, content_types=CONTENT_TYPES
)
@v15_errors
def infer_multiple(job_id):
    answer = deployments.infer_multiple(adapters(), job_id, read_fields(bp.current_request))
    return {**answer, "images": answer_size.bounded_images(answer["images"])}  # under Lambda's 6 MB


# --- tools -------------------------------------------------------------------------------------
@bp.route(BASE + "/upgrade/{job_id}", methods=["POST"], api_key_required=True, content_types=CONTENT_TYPES)
@v15_errors
def upgrade(job_id):
    return tools.upgrade(adapters(), job_id, read_fields(bp.current_request))


@bp.route(BASE + "/aug", methods=["POST"], api_key_required=True, content_types=CONTENT_TYPES)
@v15_errors
def aug_preview():
    return tools.aug_preview(adapters(), read_fields(bp.current_request))


@bp.route(BASE + "/summarize/{job_id}", methods=["POST"], api_key_required=True, content_types=CONTENT_TYPES)
@v15_errors
def summarize(job_id):
    return tools.summarize(adapters(), job_id, read_fields(bp.current_request))


@bp.route(BASE + "/visualize/{job_id}", methods=["POST"], api_key_required=True, content_types=CONTENT_TYPES)
@v15_errors
def visualize(job_id):
    return tools.visualize(adapters(), job_id, read_fields(bp.current_request))
