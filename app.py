"""AI Factory API: routes only. Everything else lives in chalicelib."""

import logging

from chalice import Rate, Response

from chalicelib import tenancy
from chalicelib.ai_factory.routes import SIGNED_MODEL_ROUTE
from chalicelib.ai_factory.routes import bp as ai_factory_bp
from chalicelib.dashboard.routes import PUBLIC_ROUTES as DASHBOARD_FILES
from chalicelib.dashboard.routes import bp as dashboard_bp
from chalicelib.openapi.routes import bp as openapi_bp
from chalicelib.services import access, events
from chalicelib.tenants.routes import bp as tenants_bp
from chalicelib.v15.routes import bp as v15_bp
from chalicelib.web.api_app import ApiApp
from chalicelib.wiring import adapters

app = ApiApp(app_name="ai-factory")  # Chalice, answering its own errors in each API's envelope
app.log.setLevel(logging.INFO)
app.api.binary_types.extend(["application/gzip", "application/octet-stream", "image/jpeg"])
app.register_blueprint(ai_factory_bp)
app.register_blueprint(v15_bp)
app.register_blueprint(openapi_bp)
app.register_blueprint(dashboard_bp)
app.register_blueprint(tenants_bp)
# Routes a plain GET may open: the dashboard's own files, and model links carrying their own signature.
KEYLESS_ROUTES = frozenset({*DASHBOARD_FILES, SIGNED_MODEL_ROUTE})


@app.middleware("http")
def as_the_keys_tenant(event, get_response):
    """Each route runs as its API key's tenant (chalicelib.tenancy); a key that is no tenant's
    gets API Gateway's 403 (the local stage checks keys itself, API Gateway does on AWS)."""
    if event.path in KEYLESS_ROUTES:
        tenant = tenancy.ANONYMOUS  # a signed link acts for its one job once its signature holds
    else:
        tenant = access.tenant_of(adapters(), event.headers, event.context)
        if tenant is None:
            return Response({"message": "Forbidden"}, status_code=403)
    with tenancy.acting_as(tenant):
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
        adapters(), event.detail["TrainingJobName"], event.detail["TrainingJobStatus"], _budget_s(event)
    )


@app.schedule(Rate(1, unit=Rate.MINUTES))
def retry_callbacks(event):
    """The outbox on AWS: callbacks whose attempt failed, or whose sender died, are sent when due."""
    events.deliver_pending(adapters(), _budget_s(event) or events.SWEEP_BUDGET_S)


@app.schedule(Rate(1, unit=Rate.MINUTES))
def launch_queued_jobs(event):
    """Jobs SageMaker had no capacity for (ResourceLimitExceeded) are launched once it has."""
    events.launch_queued(adapters())
