"""The one place domain errors become HTTP responses, in each API's own envelope.

AI Factory errors use its spec's `{"status": "error", "message": ...}`; v1.5 errors use
`{"result": "Error", "message": ...}`. The errors Chalice makes itself (415, 405, a binary
answer without a matching Accept) are put in the same envelopes by `api_app.ApiApp`, with
`error_body`.
"""

from __future__ import annotations

import functools
import logging

from chalice import Response

from chalicelib.errors import HTTP_ERRORS, ValidationError

log = logging.getLogger("aifactory.api")


def ai_factory_error(status: int, message: str) -> Response:
    return Response({"status": "error", "message": message}, status_code=status)


def v15_error(status: int, message: str) -> Response:
    return Response({"result": "Error", "message": message}, status_code=status)


def error_body(path: str, message: str) -> dict[str, str]:
    """The error body of the API `path` belongs to: v1.5 under `/api/`, AI Factory elsewhere
    (the dashboard's and `/openapi.json`'s JSON errors included)."""
    if path.startswith("/api/"):
        return {"result": "Error", "message": message}
    return {"status": "error", "message": message}


def _handler(envelope):
    def decorator(view):
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            try:
                return view(*args, **kwargs)
            except HTTP_ERRORS as exc:
                response = envelope(exc.status_code, exc.message)
                response.headers.update(getattr(exc, "headers", None) or {})  # Retry-After of a 503 "retry"
                return response
            except Exception:
                log.exception("unhandled error in %s", view.__name__)
                return envelope(500, "Internal error; the server log has the details.")

        return wrapper

    return decorator


ai_factory_errors = _handler(ai_factory_error)
v15_errors = _handler(v15_error)

__all__ = [
    "ai_factory_errors",
    "v15_errors",
    "ValidationError",
    "ai_factory_error",
    "v15_error",
    "error_body",
]
