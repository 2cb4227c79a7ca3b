"""Issue 17: the local hosting path holds infer to SageMaker InvokeEndpoint's 6 MB request and
answer, so an infer that works locally works on AWS: a request over it is refused before it
is sent (413, as SageMaker refuses it), an answer over it is a 502 (SageMaker fails such an
invocation), both naming the limit; AIFACTORY_RELAX_AWS_LIMITS lifts them for debugging.

The model server is a stand-in process (no model is trained) whose answer is as large as its
model directory's `answer_bytes` says."""

from __future__ import annotations

import base64
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
from chalicelib.aws_limits import INVOKE_ENDPOINT_MAX_BYTES, AnswerTooLarge, PayloadTooLarge
from chalicelib.ports import COMPLETED, IN_SERVICE, Deployment, Services
from chalicelib.services import jobs
from contracts import layout
from tests.serving.test_local_hosting import wait_status

LIMIT = INVOKE_ENDPOINT_MAX_BYTES
OK_JSON = b'{"result": "OK", "classification": {"category": "cat", "prob": 0.9}, "pad": ""}'

STAND_IN = """#!{python}
# Acts as `python -m inference.serve --model-dir D ...`; answers a JSON body of
# `<model dir>/answer_bytes` bytes.
import http.server, sys
args = dict(zip(sys.argv[3::2], sys.argv[4::2]))
ok = {ok!r}

class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b'{{"result": "OK"}}')
    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        size = int(open(args["--model-dir"] + "/answer_bytes").read())
        answer = ok[:-1] + b"x" * (size - len(ok)) + ok[-1:]
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

    assert wiring.services().hosting.payload_limit == LIMIT
    monkeypatch.setenv("AIFACTORY_RELAX_AWS_LIMITS", "1")
    settings.reset()
    wiring.reset()
    assert wiring.services().hosting.payload_limit is None


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
    svc = Services(
        jobs=store, artifacts=artifacts, platform=None, secrets=None, hosting=hosting, data=LocalDataStore()
    )
    monkeypatch.setattr("chalicelib.v15.routes.services", lambda: svc)
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


def test_infer_of_an_image_whose_request_is_over_6_mb_is_413_in_the_v15_envelope(http, local_stage):
    uploads = local_stage / "uploads"
    uploads.mkdir(parents=True)
    # 4.9 MB of noise: under the API's 5 MiB image limit, over 6 MB once base64 in JSON.
    noise = Image.frombytes("RGB", (1300, 1250), os.urandom(1300 * 1250 * 3))
    buffer = io.BytesIO()
    noise.save(buffer, format="PNG", compress_level=0)
    assert 4_718_592 < len(buffer.getvalue()) < settings.current().max_image_bytes
    (uploads / "noise.png").write_bytes(buffer.getvalue())
    deployed(http, 100)
    status, body = http(f"/infer/{JOB}", {**FORM, "path_to_image": str(uploads / "noise.png")})
    assert status == 413 and body["result"] == "Error"
    assert "SageMaker's InvokeEndpoint takes at most 6,291,456 bytes (6 MB)" in body["message"]


def test_infer_whose_answer_is_over_6_mb_is_502_in_the_v15_envelope(http):
    deployed(http, LIMIT + 10)
    pixel = io.BytesIO()
    Image.new("RGB", (4, 4)).save(pixel, format="PNG")
    image = base64.b64encode(pixel.getvalue()).decode()
    status, body = http(f"/infer/{JOB}", {**FORM, "base64_image": quote(image)})
    assert status == 502 and body["result"] == "Error"
    assert "InvokeEndpoint returns at most 6,291,456 bytes (6 MB)" in body["message"]
    assert json.dumps(body).count("x") < 1000  # the oversized answer is not passed on
