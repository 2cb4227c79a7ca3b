"""API keys as tenants (beyond both specs): `aifactory keys create/list/revoke` call these.

Only the stage's own key and admin keys may use them; any other key gets a 404, as for a
route it cannot see. Errors use the AI Factory envelope (`{"status": "error", ...}`).
"""

from __future__ import annotations

from chalice import Blueprint

from chalicelib.services import access
from chalicelib.web.envelopes import ai_factory_errors
from chalicelib.web.request_body import CONTENT_TYPES, read_json
from chalicelib.wiring import adapters

bp = Blueprint(__name__)


@bp.route("/tenants", methods=["GET"], api_key_required=True)
@ai_factory_errors
def list_tenants():
    return access.list_keys(adapters())


@bp.route("/tenants", methods=["POST"], api_key_required=True, content_types=CONTENT_TYPES)
@ai_factory_errors
def create_tenant():
    return access.create_key(adapters(), read_json(bp.current_request))


@bp.route("/tenants/{tenant_id}", methods=["DELETE"], api_key_required=True)
@ai_factory_errors
def revoke_tenant(tenant_id):
    return access.revoke_key(adapters(), tenant_id)
