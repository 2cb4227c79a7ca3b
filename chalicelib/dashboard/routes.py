"""`GET /` (the page), `GET /dashboard/<file>` (its scripts, style sheet and icon) and the
download routes the APIs lack for it: a checkpoint's files and an AI Factory model, each a
part at a time (chalicelib.dashboard.downloads)."""

from __future__ import annotations

from pathlib import Path

from chalice import Blueprint, Response

from chalicelib.dashboard import downloads
from chalicelib.web.api_app import any_accept
from chalicelib.web.envelopes import ai_factory_errors
from chalicelib.wiring import adapters

bp = Blueprint(__name__)
STATIC = Path(__file__).resolve().parent / "static"
JS = "text/javascript; charset=utf-8"
FILES = {
    "index.html": "text/html; charset=utf-8",
    "app.js": JS,
    "http.js": JS,
    "charts.js": JS,
    "dom.js": JS,
    "job.js": JS,
    "compare.js": JS,
    "launch.js": JS,
    "app.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
# Route templates (Chalice's `request.path`) the app's key check lets through: static files only.
# Browsers ask for /favicon.ico whatever the page says; answering it keeps a 403 out of the console.
PUBLIC_ROUTES = frozenset({"/", "/dashboard/{name}", "/favicon.ico"})
# Everything the page loads comes from this server; plots arrive as data: URLs (downloads are
# saved from blob: URLs, a navigation no directive here governs).
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


@bp.route("/favicon.ico", methods=["GET"], api_key_required=False)
def favicon():
    """The page's icon (SVG, which every current browser takes at this address too)."""
    return _file("favicon.svg")


@bp.route("/dashboard/{name}", methods=["GET"], api_key_required=False)
def dashboard_file(name):
    """The dashboard's scripts, style sheet and icon."""
    return _file(name if name != "index.html" else "")


@bp.route("/dashboard/api/v15/{job_id}/checkpoints/{epoch}/{name}", methods=["GET"], api_key_required=True)
@any_accept
@ai_factory_errors
def checkpoint_file(job_id, epoch, name):
    """A checkpoint's weights or JSON: `{"url": presigned}` (AWS) or, locally, the part of the
    file from `?offset=` (Content-Range says which, and the file's size)."""
    query = bp.current_request.query_params or {}
    found = downloads.checkpoint_file(adapters(), job_id, epoch, name, query.get("offset"))
    return _download(found, f"epoch-{int(epoch)}-{name}")


@bp.route("/dashboard/api/aif/{job_name}/model", methods=["GET"], api_key_required=True)
@any_accept
@ai_factory_errors
def model_file(job_name):
    """An AI Factory job's model.tar.gz, the same way (GET /models/<job_name> answers it whole,
    or a redirect to S3 that the page's own fetch may not follow)."""
    query = bp.current_request.query_params or {}
    return _download(
        downloads.model_file(adapters(), job_name, query.get("offset")), f"{job_name}-model.tar.gz"
    )


def _download(found: dict, filename: str) -> Response:
    if "url" in found:
        return Response(
            body={"url": found["url"]}, status_code=200, headers={"Content-Type": "application/json"}
        )
    return Response(
        body=found["data"],
        status_code=200,
        headers={
            "Content-Type": "application/octet-stream",
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Content-Range": f"bytes {found['start']}-{found['end']}/{found['total']}",
        },
    )
