"""Every route, through the real local server, answers in its own API's envelope when the
framework refuses a request: an unsupported Content-Type (415), a method the path lacks (405),
a GET without an `Accept` header (a binary answer needs one, except the signed model link).

The routes come from the registered app, so a new route is fuzzed without editing this file.
Never a 5xx, never Chalice's `{"Code", "Message"}`: v1.5 paths (`/api/...`) answer
`{"result": "Error", "message"}`, the others `{"status": "error", "message"}`; the dashboard's
plain-text 404 is its own. `HYPOTHESIS_PROFILE=deep` runs many more examples."""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.web.request_body import CONTENT_TYPES

EXAMPLES = {"ci": 25, "deep": 500}[os.environ.get("HYPOTHESIS_PROFILE", "ci")]  # each example: every route
FUZZ = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
NAME = "aif-20261130-000000-envelope"
JOB_ID = "20261130000000-envelope"
MODEL = b"\x1f\x8b\x08 the model"
DASHBOARD = ("/", "/dashboard/{name}")
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def _routes() -> list[tuple[str, str]]:
    from app import app

    return sorted((method, path) for path, methods in app.routes.items() for method in methods)


ROUTES = _routes()
GET_ROUTES = [path for method, path in ROUTES if method == "GET"]
PATHS = sorted({path for _, path in ROUTES})
UNSUPPORTED = st.one_of(
    st.sampled_from(
        [
            "application/xml",
            "text/xml; charset=utf-8",
            "text/html",
            "image/png",
            "application/octet-stream",
            "application/gzip",
            "application/x-yaml",
            "application/json-patch+json",
            "multipart/mixed; boundary=x",
            "nonsense",
        ]
    ),
    st.from_regex(r"\A[a-z]{1,12}/[a-z0-9.+-]{1,24}(; ?[a-z]{1,8}=[a-z0-9]{1,8})?\Z"),
).filter(lambda ctype: ctype.split(";")[0].strip() not in CONTENT_TYPES)
# One path segment that routes to its template. A `/` (or a lone `.`/`..`) matches no route, and
# API Gateway's own 403 (`{"message": "Missing Authentication Token"}`) answers before the app
# is called. `list` is another route (`/deploy/list`). Tab, CR, LF, `#`, `?` and `;`, though
# percent-encoded, are matched by the local server with `urllib.parse` after decoding and so
# miss their route there (a 403 too; API Gateway routes them): a defect of the local server's
# route matching, left out here.
SEGMENT = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="/\t\r\n#?;"), min_size=1, max_size=24
)
PATH_VALUE = st.one_of(
    st.just(NAME), st.just(JOB_ID), SEGMENT.filter(lambda text: text.strip(".") and text != "list")
)


@pytest.fixture(scope="module")
def completed(api):
    """A completed AI Factory job with its model, written where the server process reads."""
    from chalicelib import settings as stage_settings
    from chalicelib import wiring
    from chalicelib.ports import COMPLETED
    from chalicelib.services import jobs, model_links
    from contracts import layout

    env = {"AIFACTORY_STAGE": "local", "AIFACTORY_HOME": str(api.home), "AIFACTORY_API_KEY": api.api_key}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        patch.delenv("AIFACTORY_MODEL_LINK_KEY", raising=False)
        stage_settings.reset()
        wiring.reset()
        svc = wiring.adapters()
        record = jobs.base_record(JOB_ID, NAME, "ai_factory", "ml_topic")
        svc.jobs.create(
            {**record, "status": COMPLETED, "settled": True, "model_url": f"{api.url}/models/{NAME}"}
        )
        svc.artifacts.put_bytes(layout.job_key(JOB_ID, layout.model_output(NAME)), MODEL)
        link = model_links.signed_url(svc.settings, f"{api.url}/models/{NAME}", NAME)
        stage_settings.reset()
        wiring.reset()
    return link


def fill(path: str, value: str = NAME) -> str:
    """The route template with every `{param}` replaced by `value`, quoted."""
    return re.sub(r"\{[^}]+\}", lambda _: urllib.parse.quote(value, safe="") or "x", path)


def send(api, method: str, url: str, headers: dict[str, str], body: bytes | None = None):
    """urllib sends no `Accept` unless told, like a plain client; the key goes everywhere."""
    request = urllib.request.Request(
        url if url.startswith("http") else api.url + url,
        data=body,
        headers={"x-api-key": api.api_key, **headers},
        method=method,
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as reply:
            return reply.status, dict(reply.headers), reply.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def assert_envelope(template: str, status: int, headers: dict, body: bytes) -> dict | None:
    """The error body of the template's API; None for a success. Never a 5xx, never Code/Message."""
    assert status < 500, (template, status, body)
    if status < 400:
        assert not (body.startswith(b"{") and {"Code", "Message"} <= set(json.loads(body))), (template, body)
        return None
    if template in DASHBOARD and headers.get("Content-Type", "").startswith("text/plain"):
        assert status == 404 and body == b"Not found", (template, status, body)  # the dashboard's own
        return None
    parsed = json.loads(body)
    key, value = ("result", "Error") if template.startswith("/api/") else ("status", "error")
    assert set(parsed) == {key, "message"} and parsed[key] == value, (template, status, parsed)
    assert isinstance(parsed["message"], str) and parsed["message"], (template, parsed)
    return parsed


# --- every route, once, deterministically -----------------------------------------------------------
@pytest.mark.parametrize(("method", "template"), ROUTES)
def test_every_route_refuses_an_unsupported_content_type_in_its_envelope(api, method, template):
    status, headers, body = send(api, method, fill(template), {"Content-Type": "application/xml"}, b"<a/>")
    parsed = assert_envelope(template, status, headers, body)
    assert status == 415 and parsed["message"].startswith("Unsupported Content-Type application/xml: ")


@pytest.mark.parametrize("template", PATHS)
def test_every_path_refuses_a_method_it_lacks_in_its_envelope(api, template):
    from app import app

    allowed = app.routes[template]
    method = next(m for m in METHODS if m not in allowed)
    status, headers, body = send(api, method, fill(template), {})
    parsed = assert_envelope(template, status, headers, body)
    assert (
        status == 405
        and parsed["message"] == f"Method {method} is not allowed here; use {', '.join(allowed)}."
    )


@pytest.mark.parametrize("template", GET_ROUTES)
def test_every_get_route_without_accept_answers_in_its_envelope(api, completed, template):
    status, headers, body = send(api, "GET", fill(template), {})
    assert_envelope(template, status, headers, body)


# --- the model links without Accept ------------------------------------------------------------------
@pytest.mark.parametrize("accept", [None, "*/*", "application/json"])
def test_the_signed_model_link_downloads_with_a_plain_get(api, completed, accept):
    request = urllib.request.Request(completed, headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(request, timeout=60) as reply:
        assert (reply.status, reply.headers["Content-Type"], reply.read()) == (200, "application/gzip", MODEL)


def test_the_keyed_model_route_without_accept_is_400_in_the_envelope(api, completed):
    status, headers, body = send(api, "GET", f"/models/{NAME}", {})
    assert status == 400 and headers["Content-Type"] == "application/json"
    assert json.loads(body)["message"].startswith("This route answers application/gzip: send `Accept:")


# --- properties ------------------------------------------------------------------------------------
@FUZZ
@given(ctype=UNSUPPORTED, value=PATH_VALUE, body=st.binary(max_size=64))
def test_any_unsupported_content_type_on_any_route_is_415_in_its_envelope(api, completed, ctype, value, body):
    for method, template in ROUTES:
        status, headers, reply = send(api, method, fill(template, value), {"Content-Type": ctype}, body)
        parsed = assert_envelope(template, status, headers, reply)
        assert status == 415 and parsed["message"].startswith("Unsupported Content-Type "), (template, parsed)


@FUZZ
@given(
    value=PATH_VALUE,
    query=st.dictionaries(st.sampled_from(["expires", "signature", "limit"]), st.text(max_size=12)),
)
def test_any_get_without_accept_is_never_a_5xx_nor_chalices_body(api, completed, value, query):
    for template in GET_ROUTES:
        url = fill(template, value) + ("?" + urllib.parse.urlencode(query) if query else "")
        assert_envelope(template, *send(api, "GET", url, {}))
