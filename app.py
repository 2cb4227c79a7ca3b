"""AI Factory API: routes only. Everything else lives in chalicelib."""

import hmac
import logging

from chalice import Rate, Response

from chalicelib import settings
from chalicelib.ai_factory.routes import SIGNED_MODEL_ROUTE
from chalicelib.ai_factory.routes import bp as ai_factory_bp
from chalicelib.dashboard.routes import PUBLIC_ROUTES as DASHBOARD_FILES
from chalicelib.dashboard.routes import bp as dashboard_bp
from chalicelib.openapi.routes import bp as openapi_bp
from chalicelib.services import events
from chalicelib.v15.routes import bp as v15_bp
from chalicelib.web.api_app import ApiApp
from chalicelib.wiring import services

app = ApiApp(app_name="ai-factory")  # Chalice, answering its own errors in each API's envelope
app.log.setLevel(logging.INFO)
app.api.binary_types.extend(["application/gzip", "application/octet-stream", "image/jpeg"])
app.register_blueprint(ai_factory_bp)
app.register_blueprint(v15_bp)
app.register_blueprint(openapi_bp)
app.register_blueprint(dashboard_bp)
# Routes a plain GET may open: the dashboard's own files, and model links carrying their own signature.
KEYLESS_ROUTES = frozenset({*DASHBOARD_FILES, SIGNED_MODEL_ROUTE})


@app.middleware("http")
def require_api_key(event, get_response):
    """API Gateway checks `x-api-key` on AWS; the local stage must do it itself (403 like API Gateway)."""
    if settings.current().check_api_key and event.path not in KEYLESS_ROUTES:
        given = (event.headers or {}).get("x-api-key", "")
        if not hmac.compare_digest(given.encode(), settings.current().api_key.encode()):
            return Response({"message": "Forbidden"}, status_code=403)
    return get_response(event)


def _budget_s(event) -> float | None:
    """Seconds this Lambda may still spend, less a margin to write the outcome down."""
    context = getattr(event, "context", None)
    if context is None or not hasattr(context, "get_remaining_time_in_millis"):
        return None
    return context.get_remaining_time_in_millis() / 1000.0 - 1.0


@app.on_cw_event({"source": ["aws.sagemaker"], "detail-type": ["SageMaker Training Job State Change"]})
def training_state_changed(event):
    events.on_training_state_change(
        services(), event.detail["TrainingJobName"], event.detail["TrainingJobStatus"], _budget_s(event)
    )


@app.schedule(Rate(1, unit=Rate.MINUTES))
def retry_callbacks(event):
    """The outbox on AWS: callbacks whose attempt failed, or whose sender died, are sent when due."""
    events.deliver_pending(services(), _budget_s(event) or events.SWEEP_BUDGET_S)


@app.schedule(Rate(1, unit=Rate.MINUTES))
def launch_queued_jobs(event):  # noqa: ARG001
    """Jobs SageMaker had no capacity for (ResourceLimitExceeded) are launched once it has."""
    events.launch_queued(services())
