"""`make run`'s server (waitress + the API Gateway proxy adapter), over real sockets.

Key checks and 403s behave as under `chalice local`, binary bodies come back byte-exact,
chunked bodies are one request, stalled connections are closed, oversize bodies and header
floods get the API's envelope, and requests are served concurrently.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from chalice import Chalice, Response

from chalicelib.entrypoints import local_server
from chalicelib.web import request_body
from tests.builders import create_payload
from tests.hardening import raw_http
from tests.servers import REPO

KEY = "test-api-key"


# --- the real API process -------------------------------------------------------------------
def test_missing_key_is_403(api):
    status, body = api.call("GET", "/api/version", key="")
    assert (status, body) == (403, {"message": "Forbidden"})


def test_options_without_key_is_403(api):
    status, body = api.call("OPTIONS", "/create_training_job", key="")
    assert (status, body) == (403, {"message": "Forbidden"})


def test_unknown_route_is_403_missing_token(api):
    status, body = api.call("GET", "/no/such/route")
    assert (status, body) == (403, {"message": "Missing Authentication Token"})


def test_query_string_reaches_the_route(api):
    status, body = api.call("POST", "/api/v1.5.0/train?task=no_such_task", form={})
    assert status == 400
    assert body["result"] == "Error" and "task" in body["message"]


def test_model_download_is_byte_exact(api):
    status, created = api.call("POST", "/create_training_job", body=create_payload())
    assert status == 200, created
    name = created["job_name"]
    job_dir = next(
        p.parent
        for p in (api.home / "artifacts" / "jobs").glob("*/job.json")
        if json.loads(p.read_text())["job_name"] == name
    )
    blob = bytes(range(256)) * 64 + b"\x00\xff\x1f\x8b"
    target = job_dir / "output" / name / "output" / "model.tar.gz"
    target.parent.mkdir(parents=True)
    target.write_bytes(blob)
    status, payload = api.call("GET", f"/models/{name}", raw=True)
    assert status == 200 and payload == blob


def test_chunked_body_is_one_request(api):
    body = json.dumps({"job_name": "no-such-job"}).encode()
    headers = {"x-api-key": KEY, "Content-Type": "application/json", "Transfer-Encoding": "chunked"}
    raw = raw_http.send(api.port, raw_http.request("POST", "/status", headers, raw_http.chunked(body)))
    responses = raw_http.parse(raw)
    assert [(s, raw_http.json_of(b)) for s, _, b in responses] == [
        (404, {"status": "error", "message": "Job no-such-job not found."})
    ]


def test_body_over_api_gateways_10_mb_is_413_as_api_gateway_answers(api):
    headers = {
        "x-api-key": KEY,
        "Content-Type": "application/json",
        "Content-Length": str(local_server.MAX_BODY + 1),
    }
    # The answer comes as soon as the headers are read: the body is never sent.
    status, head, body = raw_http.parse(
        raw_http.send(api.port, raw_http.request("POST", "/status", headers))
    )[0]
    assert (status, body) == (413, b"HTTP content length exceeded 10485760 bytes.")
    assert head["content-type"] == "text; charset=utf-8"


def test_chunked_body_over_api_gateways_10_mb_is_413(api):
    headers = {
        "x-api-key": KEY,
        "Content-Type": "application/x-www-form-urlencoded",
        "Transfer-Encoding": "chunked",
    }
    big = raw_http.chunked(b"a=" + b"b" * (local_server.MAX_BODY + 10), size=1 << 20)
    status, _, body = raw_http.parse(
        raw_http.send(api.port, raw_http.request("POST", "/api/v1.5.0/train", headers, big))
    )[0]
    assert (status, body) == (413, b"HTTP content length exceeded 10485760 bytes.")


def test_body_over_the_apps_own_limit_is_the_apps_400(api):
    """Between the app's 1 MiB and Lambda's 6 MB the app answers itself, as it does on AWS."""
    big = json.dumps({"job_name": "x" * (request_body.MAX_BODY + 10)})
    status, body = api.call("POST", "/status", body=json.loads(big))
    assert status == 400 and body["status"] == "error"
    assert f"at most {request_body.MAX_BODY} bytes" in body["message"]


def test_too_many_headers_is_431(api):
    headers = {"x-api-key": KEY, **{f"x-h{i}": "v" for i in range(local_server.MAX_HEADERS + 1)}}
    status, _, body = raw_http.parse(
        raw_http.send(api.port, raw_http.request("GET", "/check_trained_job", headers))
    )[0]
    assert status == 431
    assert (
        raw_http.json_of(body)["message"] == f"Too many request headers: at most {local_server.MAX_HEADERS}."
    )


def test_stalled_connection_is_closed(api):
    with socket.create_connection(("127.0.0.1", api.port), timeout=60) as sock:
        sock.sendall(b"POST /status HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        assert sock.recv(1024) == b""  # closed by the server after --channel-timeout of silence


def test_stalled_connections_do_not_starve_requests(api):
    stalled = [socket.create_connection(("127.0.0.1", api.port)) for _ in range(12)]  # > --threads 4
    try:
        for sock in stalled:
            sock.sendall(b"GET /api/version HTTP/1.1\r\nHost: x\r\n")
        assert api.call("GET", "/api/version") == (200, "v1.5.0")
    finally:
        for sock in stalled:
            sock.close()


def test_concurrent_requests(api):
    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(lambda _: api.call("POST", "/check_trained_job", body={}), range(32)))
    assert {status for status, _ in results} == {200}


def test_startup_prints_and_url_file(api):
    log = (api.home.parent / f"api-{api.port}.log").read_text()
    assert f"AI Factory API (stage local) on {api.url}" in log
    assert "API key: from AIFACTORY_API_KEY" in log and KEY not in log  # a key the user set is not echoed
    assert (api.home / "url").read_text() == api.url + "\n"


def test_busy_port_is_one_line(tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        env = {**os.environ, "AIFACTORY_HOME": str(tmp_path / "home"), "AIFACTORY_API_KEY": KEY}
        done = subprocess.run(
            [sys.executable, "-m", "chalicelib.entrypoints.local_server", "--port", str(port)],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"aifactory: port {port} on 127.0.0.1 is already in use; pick another with PORT=<n> make run"
    ]


# --- the adapter with a small app of the same binary types ------------------------------------
@pytest.fixture
def tiny_server():
    app = Chalice(app_name="tiny")
    app.api.binary_types.extend(["application/gzip", "application/octet-stream", "image/jpeg"])

    @app.route("/blob/{kind}", methods=["GET"])
    def blob(kind):
        return Response(BLOB, status_code=200, headers={"Content-Type": CONTENT_TYPES[kind]})

    @app.route("/echo", methods=["POST"], content_types=["application/octet-stream"])
    def echo():
        return Response(app.current_request.raw_body, headers={"Content-Type": "application/octet-stream"})

    @app.route("/cookies", methods=["GET"])
    def cookies():
        params = app.current_request.query_params
        return Response({"a": params.getlist("a")}, headers={"Set-Cookie": ["one=1", "two=2"]})

    server = local_server.create_server(app, "127.0.0.1", 0, threads=2, channel_timeout=5)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.effective_port}"
    server.close()
    thread.join(10)


BLOB = bytes(range(256)) * 16
CONTENT_TYPES = {"gzip": "application/gzip", "jpeg": "image/jpeg", "bin": "application/octet-stream"}


@pytest.mark.parametrize("kind", sorted(CONTENT_TYPES))
def test_binary_response_is_byte_exact(tiny_server, kind):
    with urllib.request.urlopen(
        urllib.request.Request(f"{tiny_server}/blob/{kind}", headers={"Accept": "*/*"})
    ) as reply:
        assert reply.headers["Content-Type"] == CONTENT_TYPES[kind]
        assert reply.read() == BLOB


def test_binary_request_body_is_byte_exact(tiny_server):
    request = urllib.request.Request(
        f"{tiny_server}/echo",
        data=BLOB,
        headers={"Content-Type": "application/octet-stream", "Accept": "application/octet-stream"},
        method="POST",
    )
    with urllib.request.urlopen(request) as reply:
        assert reply.read() == BLOB


def test_multi_value_query_and_response_headers(tiny_server):
    with urllib.request.urlopen(f"{tiny_server}/cookies?a=1&a=2&a=") as reply:
        assert json.loads(reply.read()) == {"a": ["1", "2", ""]}
        assert reply.headers.get_all("Set-Cookie") == ["one=1", "two=2"]
