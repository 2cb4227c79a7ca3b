"""Issue 16, deployments are unbounded: AIFACTORY_MAX_DEPLOYMENTS caps the live deployments
of the local stage (each one a model server holding a model in memory), race-free, and
deploy/list says how much memory each one holds.

The v1.5 routes run through Chalice's test client over the real service and the real local
hosting platform; the model servers are the stand-in of test_local_hosting (a real process
answering /ping), so no model is trained for these tests."""

from __future__ import annotations

import sys
import threading

import psutil
import pytest

from chalicelib import settings
from chalicelib.adapters.local.artifact_store import DirectoryArtifactStore
from chalicelib.adapters.local.hosting_platform import LocalHostingPlatform
from chalicelib.adapters.local.job_store import SqliteJobStore
from chalicelib.errors import Conflict
from chalicelib.ports import COMPLETED, DEPLOY_FAILED, IN_SERVICE, Adapters, Deployment, DeploymentCapReached
from chalicelib.services import jobs
from chalicelib.v15 import deployments
from contracts import layout
from tests.serving.test_local_hosting import STAND_IN, wait_status

V = "/api/v1.5.0"
JOB = "20261201000000-6f1d2c3b-0a4e-4b5c-9d8e-7f6a5b4c3d2e"
JOB_NAME = "v15-20261201-000000-6f1d2c3b"
CAP = 2


@pytest.fixture
def stand_in(tmp_path):
    path = tmp_path / "python"
    path.write_text(STAND_IN.format(python=sys.executable))
    path.chmod(0o755)
    return str(path)


@pytest.fixture
def svc(tmp_path, stand_in, monkeypatch):
    """A finished classification job with deployable checkpoints of epochs 1-9, and the cap at 2."""
    monkeypatch.setenv("AIFACTORY_MAX_DEPLOYMENTS", str(CAP))
    settings.reset()
    store = SqliteJobStore(tmp_path / "jobs.sqlite3")
    store.create(jobs.base_record(JOB, JOB_NAME, "v1.5", "classification", status=COMPLETED, settled=True))
    artifacts = DirectoryArtifactStore(tmp_path / "artifacts")
    for epoch in range(1, 10):
        artifacts.put_json(
            layout.job_key(JOB, layout.epoch_file(epoch, layout.METRICS_JSON)), {"epoch": epoch}
        )
        artifacts.put_bytes(layout.job_key(JOB, layout.epoch_file(epoch, layout.WEIGHTS)), b"weights")
    hosting = LocalHostingPlatform(tmp_path / "home", python=stand_in)
    yield Adapters(jobs=store, artifacts=artifacts, platform=None, secrets=None, hosting=hosting)
    for deployment in hosting.list():
        hosting.undeploy(deployment.name)


@pytest.fixture
def http(client, svc, api_headers, monkeypatch):
    """POST/DELETE/GET on the v1.5 routes, answered by `svc`: (status, JSON body)."""
    monkeypatch.setattr("chalicelib.v15.routes.adapters", lambda: svc)
    settings.reset()  # the client fixture read the environment before the cap was set
    headers = {**api_headers, "Content-Type": "application/x-www-form-urlencoded"}

    def call(method: str, path: str, form: dict[str, str] | None = None):
        if form is None:  # GET deploy/list: no body, no form Content-Type
            response = getattr(client.http, method.lower())(V + path, headers=api_headers)
        else:
            body = "&".join(f"{k}={v}" for k, v in form.items())
            response = getattr(client.http, method.lower())(V + path, headers=headers, body=body)
        return response.status_code, response.json_body

    return call


def form(epoch: int) -> dict[str, str]:
    return {"task": "classification", "epoch": str(epoch), "target_device_id": "-1"}


def name(epoch: int) -> str:
    return f"{JOB_NAME}-e{epoch}-cpu"


def servers_of(tmp_path) -> list[psutil.Process]:
    """Running stand-in model servers of this test (their command line holds its tmp_path)."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if str(tmp_path) in " ".join(process.info["cmdline"] or []) and process.is_running():
            found.append(process)
    return found


def test_the_deploy_past_the_cap_is_refused_with_409_naming_the_cap_and_the_live_ones(http, svc, tmp_path):
    assert http("POST", f"/deploy/{JOB}", form(1)) == (200, {"result": "OK"})
    assert http("POST", f"/deploy/{JOB}", form(2)) == (200, {"result": "OK"})
    status, body = http("POST", f"/deploy/{JOB}", form(3))
    assert status == 409 and body["result"] == "Error"
    message = body["message"]
    assert "2 deployments are live and the cap is 2 (AIFACTORY_MAX_DEPLOYMENTS)" in message
    assert "Undeploy one first with DELETE /api/v1.5.0/deploy/<job_id> (epoch, target_device_id)" in message
    assert f"job {JOB} epoch 1 on CPU (-1)" in message and f"job {JOB} epoch 2 on CPU (-1)" in message
    # Nothing half-made: no directory, no entry in deploy/list, no third server.
    assert not (tmp_path / "home" / "hosting" / name(3)).exists()
    assert sorted(d.name for d in svc.hosting.list()) == [name(1), name(2)]
    assert len(servers_of(tmp_path)) == 2


def test_concurrent_deploys_never_start_more_servers_than_the_cap(svc, tmp_path, monkeypatch):
    spawned = []
    spawn = svc.hosting._spawn
    monkeypatch.setattr(svc.hosting, "_spawn", lambda d: spawned.append(d.name) or spawn(d))
    start = threading.Barrier(8)
    answers: dict[int, object] = {}

    def deploy(epoch: int) -> None:
        start.wait()
        try:
            answers[epoch] = deployments.deploy(svc, JOB, form(epoch))
        except Conflict as refused:
            answers[epoch] = refused

    threads = [threading.Thread(target=deploy, args=(epoch,)) for epoch in range(1, 9)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    accepted = [e for e, answer in answers.items() if answer == {"result": "OK"}]
    refused = [answer for answer in answers.values() if isinstance(answer, Conflict)]
    assert (len(accepted), len(refused)) == (CAP, 8 - CAP), answers
    assert all("the cap is 2 (AIFACTORY_MAX_DEPLOYMENTS)" in r.message for r in refused)
    assert sorted(spawned) == sorted(name(e) for e in accepted)
    assert sorted(d.name for d in svc.hosting.list()) == sorted(name(e) for e in accepted)
    assert len(servers_of(tmp_path)) == CAP


def test_undeploy_frees_a_slot(http, svc):
    for epoch in (1, 2):
        assert http("POST", f"/deploy/{JOB}", form(epoch))[0] == 200
    assert http("POST", f"/deploy/{JOB}", form(3))[0] == 409
    assert http("DELETE", f"/deploy/{JOB}", {"epoch": "1", "target_device_id": "-1"}) == (
        200,
        {"result": "OK"},
    )
    assert http("POST", f"/deploy/{JOB}", form(3)) == (200, {"result": "OK"})
    assert sorted(d.name for d in svc.hosting.list()) == [name(2), name(3)]


def test_a_redeploy_of_a_live_deployment_at_the_cap_is_not_counted_as_a_new_one(http, svc):
    """It gets what it gets below the cap ("already exists"), not the cap's refusal."""
    for epoch in (1, 2):
        assert http("POST", f"/deploy/{JOB}", form(epoch))[0] == 200
    status, body = http("POST", f"/deploy/{JOB}", form(1))
    assert (status, body["result"]) == (409, "Error")
    assert body["message"] == f"Deployment {name(1)} already exists."
    assert sorted(d.name for d in svc.hosting.list()) == [name(1), name(2)]


def test_a_failed_deployment_holds_no_slot(tmp_path, stand_in):
    hosting = LocalHostingPlatform(tmp_path / "home", python=stand_in)
    (tmp_path / "crash").mkdir()
    (tmp_path / "model").mkdir()
    hosting.deploy(
        Deployment("job-e1-cpu", "job", 1, -1, "classification", str(tmp_path / "crash")), max_live=1
    )
    wait_status(hosting, "job-e1-cpu", DEPLOY_FAILED)
    try:
        hosting.deploy(
            Deployment("job-e2-cpu", "job", 2, -1, "classification", str(tmp_path / "model")), max_live=1
        )
        with pytest.raises(DeploymentCapReached) as caught:
            hosting.deploy(
                Deployment("job-e3-cpu", "job", 3, -1, "classification", str(tmp_path / "model")), 1
            )
        assert [d.name for d in caught.value.live] == ["job-e2-cpu"]
    finally:
        for deployment in hosting.list():
            hosting.undeploy(deployment.name)


def test_deploy_list_shows_the_memory_a_live_local_deployment_holds(http, svc):
    assert http("POST", f"/deploy/{JOB}", form(1))[0] == 200
    wait_status(svc.hosting, name(1), IN_SERVICE)
    status, body = http("GET", "/deploy/list")
    assert (status, body["result"]) == (200, "OK"), body
    (listed,) = body["deployments"]
    assert {k: listed[k] for k in ("job_id", "epoch", "target_device_id", "status")} == {
        "job_id": JOB,
        "epoch": 1,
        "target_device_id": -1,
        "status": IN_SERVICE,
    }
    assert listed["instance_type"] is None
    assert isinstance(listed["memory_bytes"], int) and listed["memory_bytes"] > 1024 * 1024
    assert listed["memory"].endswith(" MiB") and float(listed["memory"].split()[0]) > 1


def test_a_deploy_on_a_full_disk_is_a_507_with_no_server_left_running(http, svc, tmp_path, monkeypatch):
    """The server starts, then its state cannot be written: it is stopped and its folder removed."""
    import errno

    def full(name, state):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(svc.hosting, "_write_state", full)
    status, body = http("POST", f"/deploy/{JOB}", form(1))
    assert status == 507 and body["result"] == "Error" and "disk is full" in body["message"], body
    assert not (tmp_path / "home" / "hosting" / name(1)).exists()
    assert http("GET", "/deploy/list")[1]["deployments"] == []
    assert servers_of(tmp_path) == []
