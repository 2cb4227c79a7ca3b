"""The API's Chalice app class: errors Chalice makes itself answer in each API's envelope,
and download routes answer whatever the client accepts.

Chalice answers some requests itself, inside the Lambda, before or after a view runs, with
its own body `{"Code": ..., "Message": ...}`, which neither spec knows:

- 415 `UnsupportedMediaType`: a `Content-Type` the route does not take (a route without
  `content_types` takes only `application/json`, or no Content-Type);
- 405 `MethodNotAllowedError`: a method the path has no view for (API Gateway answers these
  itself on AWS; the local server passes them on);
- 400 `BadRequest`: a binary response (plots, checkpoint files, `model.tar.gz`) to a request
  whose `Accept` does not name a binary type (API Gateway's rule, below);
- 500 `InternalServerError`: an exception in a middleware;
- a `ChaliceViewError` a view raises (our views raise domain errors; `envelopes` maps them).

`ApiApp.__call__` is the one place every REST response passes, in Lambda and behind
`make run` alike (both call `app(event, context)`), so the bodies are rewritten there into
the envelope of the path's API (`envelopes.error_body`), keeping the status and headers. A
Chalice middleware would not do: it runs inside Chalice's own last-resort handler and
before the response is serialized, so it never sees that handler's 500 nor a failure to
serialize. An exception that escapes Chalice altogether becomes a 500 in the envelope
instead of a Lambda error (API Gateway's bare 502).

Binary responses. API Gateway (REST, Lambda proxy) turns a base64 body back into bytes
only when the request's first `Accept` type is one of the API's binaryMediaTypes; any other
request gets the base64 text as the body. Chalice refuses such a request with the 400
above instead, in Lambda and locally, so the local server answers what API Gateway would.
A download link must work with a plain GET, though (urllib and Go's net/http send no
Accept; `curl` sends `*/*`), as an S3 presigned URL does. Routes marked `any_accept` get
that on both stages without breaking API Gateway's rule:

- on AWS they never send bytes through API Gateway: the view answers 302 to an S3
  presigned URL, which S3 serves to any GET; the request is left as it came, so were a
  view ever to answer bytes there, the client would get the 400 in the envelope, never
  silently corrupted base64 text;
- on the local stage there is no S3 and no API Gateway (the app itself serves the bytes
  and the local server is the only hop), so the request is handled as if it said
  `Accept: */*`: the file comes back byte-exact whatever the client accepts.

The alternatives were worse: `*/*` in binaryMediaTypes makes every response of the API
binary on AWS, and redirecting locally would need a second download server beside the app.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from chalice import Chalice

from chalicelib import settings
from chalicelib.web.envelopes import error_body

log = logging.getLogger("aifactory.api")

INTERNAL = "Internal error; the server log has the details."
ANY_ACCEPT = "_aifactory_any_accept"
_BINARY_TYPE = re.compile(r"Content-Type of (.+?)\. If a response")


def any_accept(view):
    """Marks a download view: on the local stage it answers whatever `Accept` the client sent
    (the module's docstring says why this is right on AWS too)."""
    setattr(view, ANY_ACCEPT, True)
    return view


class ApiApp(Chalice):
    """Chalice, with its own error bodies in the API's envelope (see the module docstring)."""

    def __call__(self, event: Any, context: Any) -> dict[str, Any]:
        if not isinstance(event, dict):
            return super().__call__(event, context)
        event = self._prepared(event)
        try:
            response = super().__call__(event, context)
        except Exception:
            log.exception("unhandled error answering %s %s", event.get("httpMethod"), event.get("path"))
            response = {"statusCode": 500, "headers": {}, "multiValueHeaders": {}}
            return self._enveloped(event, response, {"Code": "InternalServerError", "Message": INTERNAL})
        chalice_error = _chalice_error(response)
        return self._enveloped(event, response, chalice_error) if chalice_error else response

    # --- request ------------------------------------------------------------------------------
    def _route(self, event: dict[str, Any]):
        context = event.get("requestContext") or {}
        methods = self.routes.get(context.get("resourcePath") or event.get("resource") or "") or {}
        return methods.get(context.get("httpMethod") or event.get("httpMethod") or "")

    def _prepared(self, event: dict[str, Any]) -> dict[str, Any]:
        """API Gateway sends `null` headers when a request has none (Chalice would fail on
        them), and an `any_accept` route on the local stage reads as `Accept: */*`."""
        headers = dict(event.get("headers") or {})
        multi = dict(event.get("multiValueHeaders") or {})
        route = self._route(event)
        if (
            route is not None
            and getattr(route.view_function, ANY_ACCEPT, False)
            and settings.current().is_local
        ):
            for name in [name for name in headers if name.lower() == "accept"]:
                del headers[name]
            for name in [name for name in multi if name.lower() == "accept"]:
                del multi[name]
            headers["accept"], multi["accept"] = "*/*", ["*/*"]
        return {**event, "headers": headers, "multiValueHeaders": multi}

    # --- response -----------------------------------------------------------------------------
    def _enveloped(self, event: dict[str, Any], response: dict[str, Any], error: dict[str, str]) -> dict:
        context = event.get("requestContext") or {}
        path = context.get("resourcePath") or event.get("resource") or event.get("path") or ""
        body = json.dumps(error_body(path, self._message(event, error)))
        headers = {k: v for k, v in (response.get("headers") or {}).items() if k.lower() != "content-type"}
        multi = {
            k: v for k, v in (response.get("multiValueHeaders") or {}).items() if k.lower() != "content-type"
        }
        headers["Content-Type"] = "application/json"
        return {
            **response,
            "headers": headers,
            "multiValueHeaders": multi,
            "body": body,
            "isBase64Encoded": False,
        }

    def _message(self, event: dict[str, Any], error: dict[str, str]) -> str:
        """Chalice's words, made to say what to send instead."""
        code, message = error.get("Code"), str(error.get("Message") or "")
        request_headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
        route = self._route(event)
        if code == "UnsupportedMediaType":
            given = request_headers.get("content-type", "")[:200]
            takes = ", ".join(route.content_types) if route is not None else "application/json"
            return f"Unsupported Content-Type {given}: this route takes {takes}."
        if code == "MethodNotAllowedError":
            context = event.get("requestContext") or {}
            allowed = ", ".join(self.routes.get(context.get("resourcePath") or "", {}))
            return f"Method {context.get('httpMethod') or event.get('httpMethod')} is not allowed here; use {allowed}."
        if code == "BadRequest" and "Accept header" in message:
            found = _BINARY_TYPE.search(message)
            binary = found.group(1) if found else "a binary file"
            return (
                f"This route answers {binary}: send `Accept: {binary}` (or `Accept: */*`); "
                "API Gateway delivers binary bodies only to a request that accepts them."
            )
        if code == "InternalServerError":
            return INTERNAL
        return message or "The request was refused."


def _chalice_error(response: Any) -> dict[str, str] | None:
    """Chalice's `{"Code", "Message"}` error body, when `response` is one."""
    if not isinstance(response, dict) or int(response.get("statusCode") or 0) < 400:
        return None
    body = response.get("body")
    if response.get("isBase64Encoded") or not isinstance(body, str) or not body.startswith("{"):
        return None
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    if isinstance(parsed, dict) and set(parsed) == {"Code", "Message"}:
        return parsed
    return None
