"""The OpenAPI 3.1 document, built from the registered Chalice app at run time.

Paths come from `app.routes`, so a route is documented the moment it is registered; what a
route takes and returns comes from `shapes.OPERATIONS` (the specs) and the contracts tables
(`arguments`). A route the table does not know yet is still documented, with its envelopes
and a loose success body (`x-shape-from-spec: false`).
"""

from __future__ import annotations

import re
from typing import Any

from chalicelib.web.api_app import ANY_ACCEPT

from . import shapes

OPENAPI_VERSION = "3.1.0"
API_KEY = "ApiKey"
_PARAM = re.compile(r"\{[^}]*\}")
# Path parameters whose values are numbers in every route that has them.
_INTEGER_PARAMS = {
    "epoch": {"type": "integer"},
    "class": {"type": "integer", "minimum": 0},
    "class_index": {"type": "integer", "minimum": 0},
}


def _template(path: str) -> str:
    return _PARAM.sub("{}", path)


def _surface(path: str) -> str:
    if path == "/openapi.json":
        return "Meta"
    if path in ("/", "/favicon.ico") or path.startswith("/dashboard/"):
        return "Dashboard"
    return "v1.5" if path.startswith("/api/") else "AI Factory"


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error_responses(surface: str, content_types: list[str], binary: bool = False) -> dict[str, Any]:
    """Every error is in the surface's envelope, the framework's own (415, 405, binary 400) included."""
    envelope = shapes.ref("V15Error" if surface == "v1.5" else "AiFactoryError")
    bad_input = "Bad input: the message names the field and what it must be"
    if binary:
        bad_input += " (or, where the file is served rather than redirected to, `Accept` names neither its type nor `*/*`)"
    responses = {
        "400": _json(envelope, bad_input),
        "403": _json(shapes.ref("GatewayMessage"), "Missing or wrong `x-api-key`"),
        "404": _json(envelope, "No such job, checkpoint or file"),
        "409": _json(envelope, "The job's state forbids this request"),
        "500": _json(envelope, "Unexpected error (the server log has the details)"),
        "503": _json(envelope, "The platform cannot run this now"),
    }
    if content_types:
        responses["415"] = _json(
            envelope, "Unsupported Content-Type: the message lists the ones the route takes"
        )
    return responses


def _needs_accept(entry, spec: dict[str, Any] | None) -> bool:
    """A file route answers 400 to a request that does not accept the file, unless marked `any_accept`."""
    return bool(spec and "binary" in spec) and not getattr(entry.view_function, ANY_ACCEPT, False)


def _success(surface: str, spec: dict[str, Any] | None) -> dict[str, Any]:
    if spec is None:
        loose = shapes.ok() if surface == "v1.5" else {"type": ["object", "array"]}
        return {"200": _json(loose, "Success")}
    if "binary" in spec:
        return {
            "200": {
                "description": "The file",
                "content": {spec["binary"]: {"schema": {"type": "string", "format": "binary"}}},
            },
            "302": {
                "description": "Redirect to a presigned download URL (AWS)",
                "headers": {"Location": {"schema": {"type": "string"}}},
            },
        }
    if "text" in spec:
        return {"200": {"description": "Success", "content": {"text/plain": {"schema": spec["text"]}}}}
    return {"200": _json(spec["ok"], "Success")}


# The dashboard's downloads (chalicelib.dashboard.downloads): a part of the file, or a link.
_DASHBOARD_DOWNLOAD = {
    "responses": {
        "200": {
            "description": "The part of the file from `offset` (Content-Range), or `{url}` to a presigned link (AWS)",
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["url"],
                        "properties": {"url": {"type": "string"}},
                    }
                },
            },
        },
        **_error_responses("AI Factory", []),
    },
    "parameters": [
        {"name": "offset", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 0}}
    ],
}


def _dashboard_operation(path: str) -> dict[str, Any]:
    if path.startswith("/dashboard/api/"):
        return {"summary": "A file for the dashboard's download links", **_DASHBOARD_DOWNLOAD}
    if path == "/favicon.ico":
        content = {"image/svg+xml": {"schema": {"type": "string"}}}
        return {
            "summary": "The dashboard's icon",
            "responses": {"200": {"description": "SVG", "content": content}},
        }
    if path == "/":
        content = {"text/html": {"schema": {"type": "string"}}}
        return {
            "summary": "The dashboard page",
            "responses": {"200": {"description": "HTML", "content": content}},
        }
    content = {
        kind: {"schema": {"type": "string"}} for kind in ("text/css", "text/javascript", "image/svg+xml")
    }
    return {
        "summary": "The dashboard's scripts, style sheet and icon",
        "responses": {
            "200": {"description": "The file", "content": content},
            "404": {"description": "No such file", "content": {"text/plain": {"schema": {"type": "string"}}}},
        },
    }


def _parameters(entry) -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": _INTEGER_PARAMS.get(name, {"type": "string", "minLength": 1}),
        }
        for name in entry.view_args
    ]


def operation(path: str, method: str, entry) -> dict[str, Any]:
    surface = _surface(path)
    doc = (entry.view_function.__doc__ or "").strip()
    if surface == "Dashboard":
        op = _dashboard_operation(path)
    elif surface == "Meta":
        op = {
            "summary": "This document",
            "responses": {
                "200": _json(
                    {"type": "object", "required": ["openapi", "info", "paths", "components"]}, "OpenAPI 3.1"
                ),
                "403": _json(shapes.ref("GatewayMessage"), "Missing or wrong `x-api-key`"),
            },
        }
    else:
        spec = shapes.OPERATIONS.get((method, _template(path)))
        op = {"summary": spec["summary"] if spec else doc.split("\n")[0] or entry.view_name}
        op["responses"] = {
            **_success(surface, spec),
            **_error_responses(surface, entry.content_types, _needs_accept(entry, spec)),
        }
        if spec and "requestBody" in spec:
            op["requestBody"] = spec["requestBody"]
        if spec is None:
            op["x-shape-from-spec"] = False
        query = spec.get("parameters", []) if spec else []
        if _parameters(entry) or query:
            op["parameters"] = _parameters(entry) + query
    if doc and "description" not in op:
        op["description"] = doc
    if surface == "Dashboard" and _parameters(entry):
        op["parameters"] = _parameters(entry) + op.get("parameters", [])
    op["operationId"] = f"{method.lower()}_{entry.view_name}"
    op["tags"] = [surface]
    op["security"] = [{API_KEY: []}] if entry.api_key_required else []
    return op


def build(app) -> dict[str, Any]:
    """The whole document for `app` (a Chalice app with both blueprints registered)."""
    from chalicelib.v15.service import VERSION

    paths: dict[str, Any] = {}
    for path in sorted(app.routes):
        for method in sorted(app.routes[path]):
            entry = app.routes[path][method]
            paths.setdefault(path, {})[method.lower()] = operation(path, method, entry)
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "AI Factory API",
            "version": VERSION.lstrip("v"),
            "description": (
                "Both APIs of AI Factory: the AI Factory text-training API (`status`/`message` "
                "bodies) and the v1.5 vision training API under /api/v1.5.0 (`result`/`message` "
                "bodies). Every route but the dashboard's files needs `x-api-key`."
            ),
        },
        "servers": [{"url": "/"}],
        "tags": [{"name": name} for name in ("AI Factory", "v1.5", "Dashboard", "Meta")],
        "paths": paths,
        "components": {
            "schemas": shapes.components(),
            "securitySchemes": {API_KEY: {"type": "apiKey", "in": "header", "name": "x-api-key"}},
        },
        "security": [{API_KEY: []}],
    }
