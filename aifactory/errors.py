"""Typed errors carrying the API's own message, whichever envelope it came in.

The v1.5 API answers `{"result": "Error", "message": ...}`, the AI Factory API
`{"status": "error", "message": ...}` and API Gateway (or the local server standing in
for it) `{"message": ...}`. Callers catch by meaning (`NotFound`, `Conflict`, ...), not
by status code, and the CLI prints `str(error)`: one line naming the problem.
"""

from __future__ import annotations

from typing import Any

# API Gateway's (and Chalice's local gateway's) answer for a path or method it has no route for.
MISSING_ROUTE = "Missing Authentication Token"


class AIFactoryError(Exception):
    """Anything the API refused or could not do. `status` is the HTTP status (None: no answer)."""

    def __init__(self, message: str, status: int | None = None, method: str = "", url: str = ""):
        super().__init__(message)
        self.message = message
        self.status = status
        self.method = method
        self.url = url
        self.retry_after: float | None = None  # seconds a 503 "retry" answer asks to wait

    def __str__(self) -> str:
        return self.message


class BadRequest(AIFactoryError):
    """400: an argument the API rejected; the message names it."""


class Forbidden(AIFactoryError):
    """403 (or 401): the API key is missing or wrong."""


class NotFound(AIFactoryError):
    """404: no such job, checkpoint or model."""


class RouteNotFound(NotFound):
    """The server has no such route (an older server, or a route not deployed yet)."""


class Conflict(AIFactoryError):
    """409: the job's state forbids the request (stopping a finished job, restoring a running one)."""


class ServerError(AIFactoryError):
    """5xx: the server failed; its log has the details."""


class ConnectionFailed(AIFactoryError):
    """No HTTP answer at all: connection refused, DNS failure, timeout."""


def api_message(body: Any) -> str | None:
    """The message of an error envelope, or None when `body` is not one."""
    if not isinstance(body, dict):
        return None
    message = body.get("message")
    is_error = body.get("result") == "Error" or str(body.get("status", "")).lower() == "error"
    if is_error:
        return str(message or "the API reported an error without a message")
    if message is not None and set(body) <= {"message", "Message", "type"}:
        return str(message)
    return None


def for_response(status: int, body: Any, method: str, url: str) -> AIFactoryError:
    """The typed error for an HTTP error response (or a 2xx that carries an error envelope)."""
    message = api_message(body)
    if message is None:
        text = body if isinstance(body, str) else ""
        message = (text.strip().splitlines() or [f"HTTP {status}"])[0][:200]
    if status in (403, 404) and message == MISSING_ROUTE:
        return RouteNotFound(f"the server has no route {method} {_path(url)}", status, method, url)
    cls = {400: BadRequest, 401: Forbidden, 403: Forbidden, 404: NotFound, 409: Conflict}.get(status)
    if cls is None and status < 300:
        cls = _by_message(message)  # an older server answers errors with 200 and the envelope
    if cls is None:
        cls = ServerError if status >= 500 else AIFactoryError
    return cls(message, status, method, url)


def _by_message(message: str) -> type[AIFactoryError]:
    lowered = message.lower()
    if "not found" in lowered:
        return NotFound
    if "not stopped" in lowered or "not under tracking" in lowered or "in status" in lowered:
        return Conflict
    return BadRequest


def _path(url: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(url).path or "/"
