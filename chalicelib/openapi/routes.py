"""`GET /openapi.json`: the document of the app this blueprint is registered on."""

from __future__ import annotations

from chalice import Blueprint

from chalicelib.openapi import document

bp = Blueprint(__name__)


@bp.route("/openapi.json", methods=["GET"], api_key_required=True)
def openapi_document():
    """The OpenAPI 3.1 document of every route, built from the running app."""
    return document.build(bp.current_app)
