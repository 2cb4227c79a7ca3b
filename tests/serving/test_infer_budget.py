"""infer_multiple inside the synchronous budget, against an injected slow model server: past
AIFACTORY_SYNC_BUDGET_SECONDS it answers 503 "retry" (Retry-After) with each answered image
kept, and the retry asks the endpoint only for the others."""

from __future__ import annotations

import hashlib
import io
import json
import sys
import time

import pytest
from PIL import Image

from chalicelib import settings
from chalicelib.adapters.local.artifact_store import DirectoryArtifactStore
from chalicelib.adapters.local.data_store import LocalDataStore
from chalicelib.adapters.local.hosting_platform import LocalHostingPlatform
from chalicelib.adapters.local.job_store import SqliteJobStore
from chalicelib.errors import StillComputing
from chalicelib.ports import COMPLETED, IN_SERVICE, Adapters, Deployment
from chalicelib.v15 import deployments
from contracts import layout

pytestmark = pytest.mark.serial  # wall-clock deadlines: run alone (make test)

JOB = "20261130000000-inferbudget"
IMAGES = 10
DELAY_S = 0.5  # per invocation: 10 images, 2 at a time, take 2.5 s; the budget is 1.5 s

SLOW_SERVER = """#!{python}
# Acts as `python -m inference.serve --model-dir D --host H --port P --device X`, slowly,
# writing one line per invocation (the sha256 of the image it was asked about).
import base64, hashlib, http.server, json, sys, time
args = dict(zip(sys.argv[3::2], sys.argv[4::2]))
log = args["--model-dir"] + "/invocations"

class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b'{{"result": "OK"}}')
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        asked = self.headers.get("X-Amzn-SageMaker-Custom-Attributes", "")
        if self.headers["Content-Type"] == "application/json":  # the older form: base64 in JSON
            form = json.loads(body)
            body = base64.b64decode(form["base64_image"])
            asked = "lower_prob_thresh=" + repr(form["lower_prob_thresh"])
        digest = hashlib.sha256(body).hexdigest()
        time.sleep({delay})
        with open(log, "a") as handle:
            handle.write(digest + "\\n")
        answer = json.dumps({{"result": "OK", "sha256": digest, "asked": asked}}).encode()
        self.send_response(200); self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer))); self.end_headers()
        self.wfile.write(answer)

http.server.ThreadingHTTPServer((args["--host"], int(args["--port"])), Handler).serve_forever()
"""


def png(shade: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (shade, 255 - shade, 7)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def served(local_stage, tmp_path, monkeypatch):
    monkeypatch.setenv("AIFACTORY_SYNC_BUDGET_SECONDS", "1.5")
    monkeypatch.setenv("AIFACTORY_INFER_CONCURRENCY", "2")
    settings.reset()
    server = tmp_path / "slow-python"
    server.write_text(SLOW_SERVER.format(python=sys.executable, delay=DELAY_S))
    server.chmod(0o755)
    model = tmp_path / "model"
    model.mkdir()
    images = local_stage / "uploads" / "images"
    images.mkdir(parents=True)
    for i in range(IMAGES):
        (images / f"{i:02d}.png").write_bytes(png(i * 20))
    jobs = SqliteJobStore(local_stage / "jobs.sqlite3")
    job = {
        "job_id": JOB,
        "job_name": "inferbudget",
        "api": "v1.5",
        "task": "classification",
        "status": COMPLETED,
        "settled": True,
        "created_at": "2026-11-30 00:00:00",
        "artifact_key": layout.job_prefix(JOB),
        "attempts": [{"attempt": 1, "training_job_name": "inferbudget"}],
        "hyperparameters": {},
    }
    jobs.create(job)
    hosting = LocalHostingPlatform(local_stage / "hosting", python=str(server))
    name = deployments.deployment_name(job, 1, -1)
    hosting.deploy(Deployment(name, JOB, 1, -1, "classification", str(model)))
    deadline = time.monotonic() + 30
    while hosting.describe(name).status != IN_SERVICE:
        assert time.monotonic() < deadline, hosting.describe(name)
        time.sleep(0.05)
    artifacts = DirectoryArtifactStore(local_stage / "artifacts")
    svc = Adapters(
        jobs=jobs, artifacts=artifacts, platform=None, secrets=None, hosting=hosting, data=LocalDataStore()
    )
    yield svc, images, model / "invocations"
    hosting.undeploy(name)


def asked(log) -> list[str]:
    return log.read_text().split() if log.exists() else []


def test_past_the_budget_it_answers_retry_and_the_retry_continues(served):
    svc, images, log = served
    form = {
        "task": "classification",
        "epoch": "1",
        "lower_prob_thresh": "0.5",
        "path_to_image_pattern_list": json.dumps([str(images / "*.png")]),
    }
    began = time.monotonic()
    with pytest.raises(StillComputing) as caught:
        deployments.infer_multiple(svc, JOB, form)
    took = time.monotonic() - began
    assert 1.5 <= took < 2.3, took
    assert caught.value.status_code == 503 and caught.value.headers == {"Retry-After": "1"}
    message = caught.value.message
    assert (
        message.startswith("infer_multiple answered ")
        and f" of {IMAGES} images within the 1.5 s budget" in message
    )
    assert "still being computed; retry in 1 s" in message

    time.sleep(DELAY_S + 0.3)  # what was in flight finishes and is kept; nothing else starts
    first = len(asked(log))
    assert 4 <= first < IMAGES
    kept = list(svc.artifacts.list_keys(layout.job_key(JOB, deployments.INFER_ANSWERS)))
    assert len(kept) == first

    answer = deployments.infer_multiple(svc, JOB, form)
    digests = [hashlib.sha256(png(i * 20)).hexdigest() for i in range(IMAGES)]
    asked_with = answer["images"][0]["asked"]
    assert "lower_prob_thresh=0.5" in asked_with  # the thresholds travel with the image
    assert answer == {
        "result": "OK",
        "images": [
            {"path": str(images / f"{i:02d}.png"), "sha256": digests[i], "asked": asked_with}
            for i in range(IMAGES)
        ],
    }
    assert sorted(asked(log)) == sorted(digests)  # every image asked once, over both calls

    # other thresholds are another question: asked again (in the budget when it fits)
    with pytest.raises(StillComputing):
        deployments.infer_multiple(svc, JOB, {**form, "lower_prob_thresh": "0.6"})
