"""`GET /` (the page) and `GET /dashboard/<file>` (its script and style sheet)."""

from __future__ import annotations

from pathlib import Path

from chalice import Blueprint, Response

bp = Blueprint(__name__)
STATIC = Path(__file__).resolve().parent / "static"
FILES = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
}
# Route templates (Chalice's `request.path`) the app's key check lets through: static files only.
PUBLIC_ROUTES = frozenset({"/", "/dashboard/{name}"})
# Everything the page loads comes from this server; plots arrive as data: URLs.
HEADERS = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
}


def _file(name: str) -> Response:
    if name not in FILES:
        return Response(body="Not found", status_code=404, headers={"Content-Type": "text/plain"})
    body = (STATIC / name).read_text(encoding="utf-8")
    return Response(body=body, status_code=200, headers={"Content-Type": FILES[name], **HEADERS})


@bp.route("/", methods=["GET"], api_key_required=False)
def dashboard_page():
    """The dashboard page."""
    return _file("index.html")


@bp.route("/dashboard/{name}", methods=["GET"], api_key_required=False)
def dashboard_file(name):
    """The dashboard's script (app.js) and style sheet (app.css)."""
    return _file(name if name != "index.html" else "")
