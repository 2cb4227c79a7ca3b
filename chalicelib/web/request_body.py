"""Reads bodies the way both specs send them: JSON, form-urlencoded or multipart form-data."""

from __future__ import annotations

import json
import re
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any
from urllib.parse import parse_qsl

from chalicelib.aws_limits import API_GATEWAY_MAX_REQUEST_BYTES
from chalicelib.errors import ValidationError

CONTENT_TYPES = ["application/json", "application/x-www-form-urlencoded", "multipart/form-data", "text/plain"]
MAX_BODY = 1 << 20
# infer's body may carry a base64_image: any body that reaches the Lambda (API Gateway's 10 MB,
# then Lambda's 6 MB event, refuse larger ones first); the route then says how large an image may be.
MAX_IMAGE_BODY = API_GATEWAY_MAX_REQUEST_BYTES
MAX_JSON_DEPTH = 32  # the AI Factory payload nests 4 deep; json.loads recurses per level
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_JSON_BRACKETS = re.compile(r"[\[\]{}]")


def _content_type(request) -> str:
    headers = request.headers or {}
    return (headers.get("content-type") or "").lower()


def read_fields(request, max_body: int = MAX_BODY) -> dict[str, str]:
    """Form fields (v1.5 arguments). A JSON object body is accepted too. `max_body`: MAX_BODY,
    or more for a route whose body carries an image (infer's base64_image)."""
    fields = dict(request.query_params or {})
    raw = request.raw_body or b""
    if len(raw) > max_body:
        raise ValidationError("body", f"must be at most {max_body} bytes")
    ctype = _content_type(request)
    if not raw:
        return fields
    if ctype.startswith("multipart/form-data"):
        fields.update(_multipart(raw, ctype))
    elif ctype.startswith("application/json"):
        body = _json(raw)
        if not isinstance(body, dict):
            raise ValidationError("body", "must be a JSON object")
        fields.update({k: v if isinstance(v, str) else json.dumps(v) for k, v in body.items()})
    else:
        try:
            fields.update(parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=False))
        except UnicodeDecodeError:
            raise ValidationError("body", "must be UTF-8 form data") from None
    return fields


def read_json(request) -> Any:
    """The AI Factory payload: a JSON body, or form fields whose values are JSON."""
    raw = request.raw_body or b""
    if len(raw) > MAX_BODY:
        raise ValidationError("body", f"must be at most {MAX_BODY} bytes")
    ctype = _content_type(request)
    if raw.lstrip().startswith(b"{"):
        return _json(raw)  # curl -d '{...}' sends JSON labelled as a form
    if ctype.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        fields = read_fields(request)
        if (
            len(fields) == 1
            and next(iter(fields.values())).lstrip().startswith("{")
            and next(iter(fields)) not in ("job_name", "creator", "task_def")
        ):
            name, value = next(iter(fields.items()))
            return _json(value.encode(), name)
        return {k: _maybe_json(k, v) for k, v in fields.items()}
    if not raw.strip():
        raise ValidationError("body", "a JSON object is required")
    return _json(raw)


def json_depth(text: str) -> int:
    """How deep the brackets of a JSON text nest, strings aside: linear, and never recursive,
    so a 5,000-level body is measured before the (recursive) parser sees it."""
    depth = deepest = 0
    for bracket in _JSON_BRACKETS.findall(_JSON_STRING.sub("", text)):
        if bracket in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def _check_depth(text: str, field: str) -> None:
    if json_depth(text) > MAX_JSON_DEPTH:
        raise ValidationError(field, f"JSON nested deeper than {MAX_JSON_DEPTH} levels")


def _json(raw: bytes, field: str = "body") -> Any:
    try:
        text = raw.decode("utf-8")
        _check_depth(text, field)
        return json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValidationError(field, f"malformed JSON: {exc}") from None
    except RecursionError:  # unreachable after the depth check; kept so it can never be a 500
        raise ValidationError(field, f"JSON nested deeper than {MAX_JSON_DEPTH} levels") from None


def _maybe_json(field: str, value: str) -> Any:
    text = value.strip()
    if text.startswith(("{", "[")):
        _check_depth(text, field)
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return value
    return value


def _multipart(raw: bytes, ctype: str) -> dict[str, str]:
    message = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + raw)
    fields = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name:
            payload = part.get_payload(decode=True) or b""
            fields[name] = payload.decode("utf-8", errors="replace")
    return fields
