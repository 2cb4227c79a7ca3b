"""The local HostingPlatform with a stand-in model server: status from the process, restarts,
failures reported with the server's log, undeploy, and deployments that outlive the API."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest

from chalicelib.adapters.local.hosting_platform import LocalHostingPlatform
from chalicelib.errors import Conflict, NotFound, Unavailable
from chalicelib.ports import CREATING, DEPLOY_FAILED, IN_SERVICE, Deployment

STAND_IN = """#!{python}
# Acts as `python -m inference.serve --model-dir D --host H --port P --device X`.
import http.server, json, sys, time
args = dict(zip(sys.argv[3::2], sys.argv[4::2]))
model = args["--model-dir"]
if model.endswith("crash"):
    print("could not load the model: no model.json", flush=True)
    sys.exit(2)
time.sleep(float(open(model + "/delay").read()) if model.endswith("slow") else 0)

class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b'{{"result": "OK"}}')
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        answer = json.dumps({{"result": "OK", "echo": len(body), "device": args["--device"]}}).encode()
        self.send_response(200); self.send_header("Content-Type", "application/json"); self.end_headers()
        self.wfile.write(answer)

http.server.ThreadingHTTPServer((args["--host"], int(args["--port"])), Handler).serve_forever()
"""


@pytest.fixture
def python(tmp_path):
    path = tmp_path / "python"
    path.write_text(STAND_IN.format(python=sys.executable))
    path.chmod(0o755)
    return str(path)


@pytest.fixture
def hosting(tmp_path, python):
    platform = LocalHostingPlatform(tmp_path / "home", device_count=lambda: 1, python=python)
    yield platform
    for deployment in platform.list():
        platform.undeploy(deployment.name)


def deployment(tmp_path, name="job-e1-cpu", model="model", device=-1) -> Deployment:
    (tmp_path / model).mkdir(exist_ok=True)
    return Deployment(name, "job", 1, device, "classification", str(tmp_path / model))


def wait_status(platform, name, wanted, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        current = platform.describe(name)
        if current.status == wanted:
            return current
        time.sleep(0.1)
    raise AssertionError(f"{name} is {current.status}, not {wanted}")


def test_a_deployment_is_in_service_once_the_server_answers(hosting, tmp_path):
    hosting.deploy(deployment(tmp_path))
    assert hosting.describe("job-e1-cpu").status in (CREATING, IN_SERVICE)
    wait_status(hosting, "job-e1-cpu", IN_SERVICE)
    status, body = hosting.invoke("job-e1-cpu", b"abc", "application/json")
    assert status == 200 and b'"echo": 3' in body and b'"device": "cpu"' in body


def test_deploy_answers_at_once_and_infer_says_it_is_starting(hosting, tmp_path):
    (tmp_path / "slow").mkdir()
    (tmp_path / "slow" / "delay").write_text("3")
    hosting.deploy(deployment(tmp_path, model="slow"))
    with pytest.raises(Unavailable, match="still starting"):
        hosting.invoke("job-e1-cpu", b"{}", "application/json")


def test_the_same_deployment_twice_is_a_conflict(hosting, tmp_path):
    hosting.deploy(deployment(tmp_path))
    with pytest.raises(Conflict, match="already exists"):
        hosting.deploy(deployment(tmp_path))


def test_a_server_that_never_comes_up_is_reported_with_its_log(hosting, tmp_path):
    hosting.deploy(deployment(tmp_path, model="crash"))
    failed = wait_status(hosting, "job-e1-cpu", DEPLOY_FAILED)
    assert "exited before it served" in failed.failure_reason
    assert "no model.json" in failed.failure_reason
    with pytest.raises(Unavailable, match="Failed"):
        hosting.invoke("job-e1-cpu", b"{}", "application/json")


def test_a_dead_server_is_restarted(hosting, tmp_path):
    hosting.deploy(deployment(tmp_path))
    wait_status(hosting, "job-e1-cpu", IN_SERVICE)
    first = hosting._read("job-e1-cpu")[1]["pid"]
    os.killpg(first, signal.SIGKILL)
    deadline = time.time() + 10
    while Path(f"/proc/{first}").exists() and time.time() < deadline:
        time.sleep(0.05)
    wait_status(hosting, "job-e1-cpu", IN_SERVICE)
    state = hosting._read("job-e1-cpu")[1]
    assert state["pid"] != first and state["restarts"] == 1


def test_deployments_outlive_the_platform_object(hosting, tmp_path, python):
    hosting.deploy(deployment(tmp_path, device=0))
    wait_status(hosting, "job-e1-cpu", IN_SERVICE)
    after_restart = LocalHostingPlatform(tmp_path / "home", python=python)
    assert [(d.name, d.status, d.target_device_id) for d in after_restart.list()] == [
        ("job-e1-cpu", IN_SERVICE, 0)
    ]
    assert b'"device": "cuda:0"' in after_restart.invoke("job-e1-cpu", b"{}", "application/json")[1]


def test_undeploy_stops_the_server(hosting, tmp_path):
    hosting.deploy(deployment(tmp_path))
    wait_status(hosting, "job-e1-cpu", IN_SERVICE)
    pid = hosting._read("job-e1-cpu")[1]["pid"]
    hosting.undeploy("job-e1-cpu")
    assert hosting.list() == []
    deadline = time.time() + 10
    while Path(f"/proc/{pid}").exists() and time.time() < deadline:
        time.sleep(0.05)
    assert not Path(f"/proc/{pid}").exists()
    with pytest.raises(NotFound):
        hosting.undeploy("job-e1-cpu")
