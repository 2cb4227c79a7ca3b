"""Issue 17: `make run`'s server refuses what API Gateway and Lambda refuse, in their words,
so a route that works locally works deployed (`chalicelib.aws_limits`):

- a Lambda slower than API Gateway's integration timeout (29 s; 1 s here) is answered 504
  `{"message": "Endpoint request timed out"}` at the timeout while it goes on;
- an event over Lambda's 6 MB synchronous limit is 413 `{"message": "Request Too Long"}`;
- proxy output over Lambda's 6,291,556 bytes is 502 `{"message": "Internal server error"}`,
  and the server log names the route and the size;
- a body whose Content-Type is not a binary media type reaches the app as UTF-8 text;
- AIFACTORY_RELAX_AWS_LIMITS lifts the timeout and the 6 MB limits.

The server is `create_server` in this process around a small Chalice app (a slow route
needs no test hook in the product); the 10 MB request cap and the app's own limit are
tested on the real API process in test_local_server.py, and so is the event limit here.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
import urllib.error
import urllib.request

import pytest
from chalice import Chalice, Response

from chalicelib.aws_limits import LAMBDA_MAX_REQUEST_BYTES, LAMBDA_MAX_RESPONSE_BYTES
from chalicelib.entrypoints import local_server
from tests.hardening import raw_http

KEY = "test-api-key"
TIMEOUT = 1.0


def small_app(release: threading.Event, finished: threading.Event) -> Chalice:
    app = Chalice(app_name="limits")
    app.api.binary_types.extend(["application/gzip", "application/octet-stream", "image/jpeg"])

    @app.route("/slow", methods=["GET"])
    def slow():
        release.wait(30)  # a Lambda past the integration timeout
        finished.set()
        return {"done": True}

    @app.route("/answer/{size}", methods=["GET"])
    def answer(size):
        """A JSON answer whose Lambda proxy output is exactly `size` bytes."""
        overhead = len(json.dumps(Response("", headers={"Content-Type": "text/plain"}).to_dict()))
        return Response("a" * (int(size) - overhead), headers={"Content-Type": "text/plain"})

    @app.route("/text", methods=["POST"], content_types=["text/plain", "application/octet-stream"])
    def text():
        return {"raw": base64.b64encode(app.current_request.raw_body).decode()}

    return app


@pytest.fixture
def serve():
    """serve(**create_server options) -> base URL; (release, finished) drive the slow route."""
    release, finished = threading.Event(), threading.Event()
    started = []

    def start(**options) -> str:
        options = {"threads": 2, "channel_timeout": 5, "integration_timeout": TIMEOUT, **options}
        server = local_server.create_server(small_app(release, finished), "127.0.0.1", 0, **options)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        started.append((server, thread))
        return f"http://127.0.0.1:{server.effective_port}"

    start.release, start.finished = release, finished
    yield start
    release.set()
    for server, thread in started:
        server.close()
        thread.join(10)


def get(url: str, data: bytes | None = None, ctype: str = "text/plain"):
    headers = {"Accept": "application/json", **({"Content-Type": ctype} if data else {})}
    request = urllib.request.Request(url, data=data, headers=headers, method="POST" if data else "GET")
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.status, reply.headers, reply.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


@pytest.mark.serial
def test_a_lambda_past_the_integration_timeout_is_504_at_the_timeout_and_goes_on(serve, caplog):
    url = serve()
    caplog.set_level(logging.WARNING, logger="aifactory.server")
    began = time.monotonic()
    status, _, body = get(url + "/slow")
    took = time.monotonic() - began
    assert (status, json.loads(body)) == (504, {"message": "Endpoint request timed out"})
    assert TIMEOUT <= took < TIMEOUT + 1.5
    assert not serve.finished.is_set()
    serve.release.set()
    assert serve.finished.wait(10)  # the work went on after the 504, as a Lambda does
    assert "GET /slow did not answer within API Gateway's 1 s integration timeout: 504" in caplog.text


def test_the_timeout_leaves_the_server_answering(serve):
    url = serve()
    assert get(url + "/slow")[0] == 504
    assert get(url + "/answer/1000")[0] == 200  # the 504 freed the request's thread


def test_an_event_over_lambdas_6_mb_is_413_request_too_long(serve):
    url = serve()
    # 4.8 MB of binary type: base64 in the event makes it 6.4 MB.
    status, headers, body = get(url + "/text", b"\xff" * 4_800_000, "application/octet-stream")
    assert (status, json.loads(body)) == (413, {"message": "Request Too Long"})
    assert headers["x-amzn-ErrorType"] == "BadRequestException"


def test_an_event_under_lambdas_6_mb_reaches_the_app(serve):
    url = serve()
    status, _, body = get(url + "/text", b"\xff" * 4_000_000, "application/octet-stream")
    assert status == 200 and base64.b64decode(json.loads(body)["raw"]) == b"\xff" * 4_000_000


def test_a_text_body_that_is_not_utf8_arrives_as_api_gateway_passes_it(serve):
    url = serve()
    status, _, body = get(url + "/text", b"caf\xe9 \xff!", "text/plain")
    assert status == 200 and base64.b64decode(json.loads(body)["raw"]) == "caf\ufffd \ufffd!".encode()


def test_an_answer_over_lambdas_6_mb_is_502_and_the_log_names_route_and_size(serve, caplog):
    url = serve()
    caplog.set_level(logging.ERROR, logger="aifactory.server")
    size = LAMBDA_MAX_RESPONSE_BYTES + 1
    status, headers, body = get(f"{url}/answer/{size}")
    assert (status, json.loads(body)) == (502, {"message": "Internal server error"})
    assert headers["x-amzn-ErrorType"] == "InternalServerErrorException"
    assert (
        f"GET /answer/{size} (route /answer/{{size}}) answered 6,291,557 bytes of Lambda proxy output, "
        "over Lambda's 6,291,556-byte synchronous limit: 502" in caplog.text
    )


def test_an_answer_at_lambdas_limit_passes(serve):
    url = serve()
    status, _, body = get(f"{url}/answer/{LAMBDA_MAX_RESPONSE_BYTES}")
    assert status == 200 and len(body) > 6_291_000


def test_relaxed_limits_let_slow_and_large_through(serve):
    url = serve(relax_aws_limits=True)
    threading.Timer(TIMEOUT + 0.5, serve.release.set).start()
    assert get(url + "/slow")[:1] == (200,)
    assert get(f"{url}/answer/{LAMBDA_MAX_RESPONSE_BYTES + 1000}")[0] == 200
    assert get(url + "/text", b"\xff" * 4_800_000, "application/octet-stream")[0] == 200


# --- the real API process --------------------------------------------------------------------
def test_the_apis_event_over_6_mb_is_413_request_too_long(api):
    """Under API Gateway's 10 MB, over Lambda's 6 MB: refused before the app sees it."""
    body = b'{"job_name": "' + b"x" * (LAMBDA_MAX_REQUEST_BYTES + 1) + b'"}'
    headers = {"x-api-key": KEY, "Content-Type": "application/json", "Content-Length": str(len(body))}
    status, head, answer = raw_http.parse(
        raw_http.send(api.port, raw_http.request("POST", "/status", headers, body))
    )[0]
    assert (status, json.loads(answer)) == (413, {"message": "Request Too Long"})
    log = (api.home.parent / f"api-{api.port}.log").read_text()
    assert "POST /status: the Lambda event is" in log and "over Lambda's 6,291,456-byte" in log
