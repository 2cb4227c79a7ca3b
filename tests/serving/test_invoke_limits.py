"""Issue 17: the local hosting path holds infer to SageMaker InvokeEndpoint's 6 MB request and
answer, so an infer that works locally works on AWS: a request over it is refused before it
is sent (413, as SageMaker refuses it), an answer over it is a 502 (SageMaker fails such an
invocation), both naming the limit; AIFACTORY_RELAX_AWS_LIMITS lifts them for debugging.

The model server is a stand-in process (no model is trained) whose answer is as large as its
model directory's `answer_bytes` says."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import sys
from urllib.parse import quote

import pytest
from PIL import Image

from chalicelib import settings
from chalicelib.adapters.local.artifact_store import DirectoryArtifactStore
from chalicelib.adapters.local.data_store import LocalDataStore
from chalicelib.adapters.local.hosting_platform import LocalHostingPlatform
from chalicelib.adapters.local.job_store import SqliteJobStore
from chalicelib.aws_limits import (
    INVOKE_ENDPOINT_MAX_BYTES,
    MAX_BASE64_IMAGE_BYTES,
    AnswerTooLarge,
    PayloadTooLarge,
)
from chalicelib.ports import COMPLETED, IN_SERVICE, Adapters, Deployment
from chalicelib.services import jobs
from contracts import layout
from tests.serving.test_local_hosting import wait_status

LIMIT = INVOKE_ENDPOINT_MAX_BYTES
MAX_BASE64 = MAX_BASE64_IMAGE_BYTES  # 4,400,000
OK_JSON = b'{"result": "OK", "classification": {"category": "cat", "prob": 0.9}, "pad": ""}'

STAND_IN = """#!{python}
# Acts as `python -m inference.serve --model-dir D ...`; answers a JSON body of
# `<model dir>/answer_bytes` bytes, and keeps what it was sent in `<model dir>/last_request.json`.
import hashlib, http.server, json, sys
args = dict(zip(sys.argv[3::2], sys.argv[4::2]))
ok = {ok!r}

class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b'{{"result": "OK"}}')
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        seen = {{"content_type": self.headers["Content-Type"], "bytes": len(body),
                "sha256": hashlib.sha256(body).hexdigest(),
                "custom_attributes": self.headers["X-Amzn-SageMaker-Custom-Attributes"]}}
        open(args["--model-dir"] + "/last_request.json", "w").write(json.dumps(seen))
        size = int(open(args["--model-dir"] + "/answer_bytes").read())
        answer = ok[:-2] + b"x" * (size - len(ok)) + ok[-2:]
        self.send_response(200); self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer))); self.end_headers()
        self.wfile.write(answer)

http.server.ThreadingHTTPServer((args["--host"], int(args["--port"])), Handler).serve_forever()
"""


@pytest.fixture
def stand_in(tmp_path):
    path = tmp_path / "python"
    path.write_text(STAND_IN.format(python=sys.executable, ok=OK_JSON))
    path.chmod(0o755)
    return str(path)


def serving(platform: LocalHostingPlatform, tmp_path, answer_bytes: int, name="job-e1-cpu") -> str:
    model = tmp_path / f"model-{answer_bytes}"
    model.mkdir()
    (model / "answer_bytes").write_text(str(answer_bytes))
    platform.deploy(Deployment(name, "job", 1, -1, "classification", str(model)))
    wait_status(platform, name, IN_SERVICE)
    return name


@pytest.fixture
def platforms(tmp_path, stand_in):
    made = []

    def make(payload_limit=LIMIT) -> LocalHostingPlatform:
        platform = LocalHostingPlatform(tmp_path / "home", python=stand_in, payload_limit=payload_limit)
        made.append(platform)
        return platform

    yield make
    for deployment in made[0].list() if made else []:
        made[0].undeploy(deployment.name)


# --- the hosting platform --------------------------------------------------------------------
def test_a_request_over_6_mb_is_refused_413_naming_the_limit(platforms, tmp_path):
    platform = platforms()
    name = serving(platform, tmp_path, 100)
    with pytest.raises(PayloadTooLarge) as refused:
        platform.invoke(name, b"x" * (LIMIT + 1), "application/json")
    assert refused.value.status_code == 413
    assert refused.value.message.startswith(
        f"The request to deployment {name} is 6,291,457 bytes (6.3 MB); SageMaker's InvokeEndpoint "
        "takes at most 6,291,456 bytes (6 MB)."
    )


def test_a_request_of_exactly_6_mb_is_sent(platforms, tmp_path):
    platform = platforms()
    name = serving(platform, tmp_path, 100)
    assert platform.invoke(name, b"x" * LIMIT, "application/json")[0] == 200


def test_an_answer_over_6_mb_is_a_502_naming_the_limit(platforms, tmp_path):
    platform = platforms()
    name = serving(platform, tmp_path, LIMIT + 1)
    with pytest.raises(AnswerTooLarge) as failed:
        platform.invoke(name, b"{}", "application/json")
    assert failed.value.status_code == 502
    assert failed.value.message.startswith(
        f"The model server of deployment {name} answered 6,291,457 bytes (6.3 MB); SageMaker's "
        "InvokeEndpoint returns at most 6,291,456 bytes (6 MB)."
    )


def test_an_answer_of_exactly_6_mb_passes(platforms, tmp_path):
    platform = platforms()
    name = serving(platform, tmp_path, LIMIT)
    status, answer = platform.invoke(name, b"{}", "application/json")
    assert (status, len(answer)) == (200, LIMIT)


def test_relaxed_limits_pass_larger_requests_and_answers(platforms, tmp_path):
    platform = platforms(payload_limit=None)
    name = serving(platform, tmp_path, LIMIT + 1000)
    status, answer = platform.invoke(name, b"x" * (LIMIT + 1000), "application/json")
    assert (status, len(answer)) == (200, LIMIT + 1000)


def test_the_stage_setting_relaxes_the_local_hosting_limit(local_stage, monkeypatch):
    from chalicelib import wiring

    assert wiring.adapters().hosting.payload_limit == LIMIT
    monkeypatch.setenv("AIFACTORY_RELAX_AWS_LIMITS", "1")
    settings.reset()
    wiring.reset()
    assert wiring.adapters().hosting.payload_limit is None


# --- through the v1.5 infer route -------------------------------------------------------------
V = "/api/v1.5.0"
JOB = "20261201000000-6f1d2c3b-0a4e-4b5c-9d8e-7f6a5b4c3d2e"
JOB_NAME = "v15-20261201-000000-6f1d2c3b"
FORM = {"task": "classification", "epoch": "1"}


@pytest.fixture
def http(client, local_stage, tmp_path, stand_in, api_headers, monkeypatch):
    """The v1.5 routes over a finished job whose epoch 1 is deployable: (status, JSON body)."""
    store = SqliteJobStore(tmp_path / "jobs.sqlite3")
    store.create(jobs.base_record(JOB, JOB_NAME, "v1.5", "classification", status=COMPLETED, settled=True))
    artifacts = DirectoryArtifactStore(tmp_path / "artifacts")
    artifacts.put_json(layout.job_key(JOB, layout.epoch_file(1, layout.METRICS_JSON)), {"epoch": 1})
    artifacts.put_bytes(layout.job_key(JOB, layout.epoch_file(1, layout.WEIGHTS)), b"weights")
    hosting = LocalHostingPlatform(tmp_path / "home", python=stand_in)
    svc = Adapters(
        jobs=store, artifacts=artifacts, platform=None, secrets=None, hosting=hosting, data=LocalDataStore()
    )
    monkeypatch.setattr("chalicelib.v15.routes.adapters", lambda: svc)
    headers = {**api_headers, "Content-Type": "application/x-www-form-urlencoded"}

    def call(path: str, form: dict[str, str]):
        body = "&".join(f"{k}={v}" for k, v in form.items())
        response = client.http.post(V + path, headers=headers, body=body)
        return response.status_code, response.json_body

    call.hosting, call.artifacts = hosting, artifacts
    yield call
    for deployment in hosting.list():
        hosting.undeploy(deployment.name)


def deployed(http, answer_bytes: int) -> None:
    """Epoch 1 deployed, its stand-in answering `answer_bytes` bytes, and in service."""
    key = layout.job_key(JOB, layout.epoch_file(1, "answer_bytes"))
    http.artifacts.put_bytes(key, str(answer_bytes).encode())
    assert http(f"/deploy/{JOB}", {**FORM, "target_device_id": "-1"}) == (200, {"result": "OK"})
    (deployment,) = http.hosting.list()
    wait_status(http.hosting, deployment.name, IN_SERVICE)


def jpeg_of(size: int) -> bytes:
    """A JPEG of exactly `size` bytes: noise (which JPEG cannot shrink) padded with comments."""
    side = max(8, int((size / 1.6) ** 0.5))
    noise = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
    buffer = io.BytesIO()
    noise.save(buffer, format="JPEG", quality=95)
    data = buffer.getvalue()
    assert len(data) + 4 <= size, (len(data), size)
    segments, missing = [], size - len(data)
    while missing:  # a COM segment is 4 to 65,537 bytes: marker, length, text
        part = min(missing, 65_537)
        if 0 < missing - part < 4:
            part -= 4
        segments.append(b"\xff\xfe" + (part - 2).to_bytes(2, "big") + b"c" * (part - 4))
        missing -= part
    return data[:2] + b"".join(segments) + data[2:]


def last_request(http) -> dict:
    return json.loads(
        http.artifacts.get_bytes(layout.job_key(JOB, layout.epoch_file(1, "last_request.json")))
    )


def test_a_5_5_mb_jpeg_by_path_infers_sent_raw_with_the_arguments_in_custom_attributes(http, local_stage):
    """Before, the image went base64 in JSON: 4.5-5 MiB images passed the API and failed at
    InvokeEndpoint's 6 MB. It goes as it is now, so any image up to 6 MB reaches the endpoint."""
    uploads = local_stage / "uploads"
    uploads.mkdir(parents=True)
    image = jpeg_of(5_500_000)
    assert Image.open(io.BytesIO(image)).format == "JPEG"
    (uploads / "big.jpg").write_bytes(image)
    deployed(http, len(OK_JSON))
    form = {**FORM, "path_to_image": str(uploads / "big.jpg"), "lower_prob_thresh": "0.25"}
    status, body = http(f"/infer/{JOB}", {**form, "returns_images": "False"})
    assert (status, body["result"]) == (200, "OK"), body
    seen = last_request(http)
    assert seen == {
        "content_type": "image/jpeg",
        "bytes": 5_500_000,
        "sha256": hashlib.sha256(image).hexdigest(),
        "custom_attributes": "lower_prob_thresh=0.25,upper_prob_thresh=1.0,returns_images=false",
    }


def test_a_png_is_sent_as_image_png(http, local_stage):
    deployed(http, len(OK_JSON))
    pixel = io.BytesIO()
    Image.new("RGB", (4, 4)).save(pixel, format="PNG")
    status, _ = http(
        f"/infer/{JOB}", {**FORM, "base64_image": quote(base64.b64encode(pixel.getvalue()).decode())}
    )
    assert status == 200
    seen = last_request(http)
    assert (seen["content_type"], seen["bytes"]) == ("image/png", len(pixel.getvalue()))
    assert seen["custom_attributes"] == "lower_prob_thresh=0.7,upper_prob_thresh=1.0,returns_images=true"


def test_an_image_by_path_over_6_mb_is_refused_naming_invoke_endpoint(http, local_stage):
    uploads = local_stage / "uploads"
    uploads.mkdir(parents=True)
    (uploads / "huge.jpg").write_bytes(jpeg_of(LIMIT + 1))
    deployed(http, len(OK_JSON))
    status, body = http(f"/infer/{JOB}", {**FORM, "path_to_image": str(uploads / "huge.jpg")})
    assert status == 400 and body["result"] == "Error"
    assert "is 6291457 bytes; at most 6291456 are allowed" in body["message"]
    assert "SageMaker's InvokeEndpoint takes at most 6,291,456 bytes (6 MB)" in body["message"]
    assert not http.artifacts.get_bytes(layout.job_key(JOB, layout.epoch_file(1, "last_request.json")))


def test_a_base64_image_over_the_event_limit_is_refused_saying_why(http):
    """A base64_image over 4.4 MB cannot reach the API through Lambda's 6 MB event in a form;
    one that still does (a JSON body, here through the test client) is refused with the reason."""
    image = jpeg_of(MAX_BASE64 + 1)
    deployed(http, len(OK_JSON))
    status, body = http(f"/infer/{JOB}", {**FORM, "base64_image": quote(base64.b64encode(image).decode())})
    assert status == 400 and body["result"] == "Error"
    assert f"is {MAX_BASE64 + 1} bytes; at most {MAX_BASE64} are allowed" in body["message"]
    assert "Lambda in an event of at most 6,291,456 bytes (6 MB)" in body["message"]
    assert "by path_to_image" in body["message"]
    assert not http.artifacts.get_bytes(layout.job_key(JOB, layout.epoch_file(1, "last_request.json")))


def test_a_base64_image_at_the_limit_infers(http):
    image = jpeg_of(MAX_BASE64)
    deployed(http, len(OK_JSON))
    status, body = http(f"/infer/{JOB}", {**FORM, "base64_image": quote(base64.b64encode(image).decode())})
    assert (status, body["result"]) == (200, "OK"), body
    assert last_request(http)["bytes"] == MAX_BASE64


def test_image_settings_are_held_to_what_reaches_the_endpoint(local_stage, monkeypatch):
    from chalicelib.v15 import deployments

    assert deployments.image_limits(settings.current()) == (LIMIT, MAX_BASE64)
    monkeypatch.setenv("AIFACTORY_MAX_IMAGE_BYTES", str(20 * 1024 * 1024))
    monkeypatch.setenv("AIFACTORY_MAX_BASE64_IMAGE_BYTES", str(8 * 1024 * 1024))
    settings.reset()
    assert deployments.image_limits(settings.current()) == (LIMIT, LIMIT)
    monkeypatch.setenv("AIFACTORY_RELAX_AWS_LIMITS", "1")
    settings.reset()
    assert deployments.image_limits(settings.current()) == (20 * 1024 * 1024, 8 * 1024 * 1024)
    monkeypatch.setenv("AIFACTORY_MAX_IMAGE_BYTES", "1000")
    settings.reset()
    assert deployments.image_limits(settings.current()) == (1000, 1000)  # a base64_image is never larger than a path's


def test_infer_whose_answer_is_over_6_mb_is_502_in_the_v15_envelope(http):
    deployed(http, LIMIT + 10)
    pixel = io.BytesIO()
    Image.new("RGB", (4, 4)).save(pixel, format="PNG")
    image = base64.b64encode(pixel.getvalue()).decode()
    status, body = http(f"/infer/{JOB}", {**FORM, "base64_image": quote(image)})
    assert status == 502 and body["result"] == "Error"
    assert "InvokeEndpoint returns at most 6,291,456 bytes (6 MB)" in body["message"]
    assert json.dumps(body).count("x") < 1000  # the oversized answer is not passed on


# --- through the local server, which holds requests to Lambda's 6 MB event ------------------------
@pytest.fixture
def gateway(http, api_headers):
    """post(form, json_body=False) through `make run`'s server (API Gateway's and Lambda's
    limits): (status, parsed body)."""
    import threading
    import urllib.error
    import urllib.parse
    import urllib.request

    from app import app
    from chalicelib.entrypoints import local_server

    server = local_server.create_server(app, "127.0.0.1", 0, threads=2, channel_timeout=30)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.effective_port}{V}/infer/{JOB}"

    def post(form: dict[str, str], json_body: bool = False):
        if json_body:
            data, ctype = json.dumps(form).encode(), "application/json"
        else:  # as curl --data-urlencode and requests send it: `+`, `/`, `=` percent-encoded
            data, ctype = urllib.parse.urlencode(form).encode(), "application/x-www-form-urlencoded"
        headers = {"x-api-key": api_headers["x-api-key"], "Content-Type": ctype, "Accept": "application/json"}
        request = urllib.request.Request(url, data=data, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=60) as reply:
                return reply.status, json.loads(reply.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    yield post
    server.close()
    thread.join(10)


def test_through_the_gateway_a_base64_image_at_the_limit_fits_lambdas_event_as_a_form(http, gateway):
    deployed(http, len(OK_JSON))
    image = jpeg_of(MAX_BASE64)
    status, body = gateway(
        {**FORM, "base64_image": base64.b64encode(image).decode(), "returns_images": "False"}
    )
    assert (status, body["result"]) == (200, "OK"), body
    assert last_request(http)["sha256"] == hashlib.sha256(image).hexdigest()


def test_through_the_gateway_a_base64_image_over_the_limit_gets_the_apis_reason(http, gateway):
    """4.6 MB: over the API's base64 limit, but its JSON body still fits Lambda's event, so the
    API answers, saying which limit applies and what to send instead."""
    deployed(http, len(OK_JSON))
    status, body = gateway(
        {**FORM, "base64_image": base64.b64encode(jpeg_of(4_600_000)).decode()}, json_body=True
    )
    assert status == 400 and body["result"] == "Error"
    assert (
        "larger than 4400000 bytes once decoded: a base64_image travels in the request body"
        in body["message"]
    )
    assert "send a larger image (up to 6,291,456 bytes) by path_to_image" in body["message"]


def test_through_the_gateway_a_body_over_lambdas_event_is_api_gateways_413(http, gateway):
    """Past the event itself the Lambda never runs: API Gateway's own 413, on AWS as here."""
    deployed(http, len(OK_JSON))
    status, body = gateway(
        {**FORM, "base64_image": base64.b64encode(jpeg_of(4_800_000)).decode()}, json_body=True
    )
    assert (status, body) == (413, {"message": "Request Too Long"})
