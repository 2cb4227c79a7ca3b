"""Tenants through the real local server: a key sees only its own work (issue 17, section 5).

Tenant A is the stage's own key (the single-key setup, unchanged); B is a key A made. For
every registered route that names a job (derived from the app, so a new route is covered
without editing this file) B asking for A's job gets exactly what B gets for a job that does
not exist: no existence oracle. Lists leave A's jobs out, an admin key sees them, a revoked
key is refused, and quotas refuse with a 429 naming the quota.
"""

from __future__ import annotations

import re
import urllib.error
import urllib.request

import pytest

from tests.builders import create_payload
from tests.servers import ApiServer

V = "/api/v1.5.0"
GHOST_ID = "20250101000000-00000000-0000-4000-8000-000000000000"
GHOST_NAME = "aif-20250101-000000-ghostjob"


def _routes() -> list[tuple[str, str]]:
    from app import app

    return sorted((method, path) for path, methods in app.routes.items() for method in methods)


JOB_ROUTES = [(m, p) for m, p in _routes() if "{job_id}" in p or "{job_name}" in p]
BODY_JOB_ROUTES = [("POST", "/status"), ("POST", "/stop_training_job"), ("POST", "/logs")]


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    home = tmp_path_factory.mktemp("tenants") / "home"
    server = ApiServer(home, extra_env={"AIFACTORY_MAX_CONCURRENT_JOBS": "0"})  # jobs queue, nothing trains
    with server:
        yield server
    server.kill_jobs()


def make_key(api, name, **body) -> str:
    status, answer = api.call("POST", "/tenants", {"name": name, **body})
    assert status == 200, answer
    return answer["api_key"]


@pytest.fixture(scope="module")
def keys(api):
    return {"b": make_key(api, "team-b"), "admin": make_key(api, "ops", admin=True)}


@pytest.fixture(scope="module")
def a_jobs(api, tmp_path_factory):
    data = tmp_path_factory.mktemp("data")
    (data / "images").mkdir()
    status, created = api.call("POST", "/create_training_job", create_payload())
    assert status == 200, created
    status, trained = api.call(
        "POST", f"{V}/train", form={"task": "classification", "algorithm": "resnet18", "data_dir": str(data)}
    )
    assert status == 200, trained
    return {"job_name": created["job_name"], "job_id": trained["job_id"]}


def path_for(path: str, job_id: str, job_name: str) -> str:
    path = path.replace("{job_id}", job_id).replace("{job_name}", job_name)
    return re.sub(r"\{[a-z_]+\}", "1", path)  # epoch, class index


def answer(api, method: str, path: str, key: str, form=None, body=None):
    status, payload = api.call(method, path, body=body, form=form, key=key, raw=True)
    return status, payload


def same_but_the_name(one: bytes, other: bytes, mine: dict, ghost: tuple[str, str]) -> bool:
    """Equal once the job's id and name are replaced by the ghost's."""
    text = one.decode(errors="replace").replace(mine["job_id"], ghost[0]).replace(mine["job_name"], ghost[1])
    return text == other.decode(errors="replace")


def test_the_app_has_job_routes_to_try():
    assert len(JOB_ROUTES) >= 20, JOB_ROUTES


@pytest.mark.parametrize(("method", "path"), JOB_ROUTES, ids=[f"{m} {p}" for m, p in JOB_ROUTES])
def test_another_tenants_job_is_as_absent_on_every_route(api, keys, a_jobs, method, path):
    form = {"task": "classification", "epoch": "1", "target_device_id": "-1", "param_key": "fc.weight"}
    form = form if method in ("POST", "PUT", "PATCH", "DELETE") and path.startswith("/api/") else None
    theirs = answer(api, method, path_for(path, a_jobs["job_id"], a_jobs["job_name"]), keys["b"], form=form)
    ghost = answer(api, method, path_for(path, GHOST_ID, GHOST_NAME), keys["b"], form=form)
    assert theirs[0] == ghost[0] and theirs[0] in (400, 404), (theirs, ghost)
    assert same_but_the_name(theirs[1], ghost[1], a_jobs, (GHOST_ID, GHOST_NAME)), (theirs, ghost)


@pytest.mark.parametrize(("method", "path"), BODY_JOB_ROUTES)
def test_another_tenants_job_name_in_a_body_is_as_absent(api, keys, a_jobs, method, path):
    theirs = answer(api, method, path, keys["b"], body={"job_name": a_jobs["job_name"]})
    ghost = answer(api, method, path, keys["b"], body={"job_name": GHOST_NAME})
    assert theirs[0] == ghost[0] == 404, (theirs, ghost)
    assert same_but_the_name(theirs[1], ghost[1], a_jobs, (GHOST_ID, GHOST_NAME))


def test_the_owner_still_sees_its_jobs(api, a_jobs):
    assert api.call("POST", "/status", {"job_name": a_jobs["job_name"]})[0] == 200
    assert api.call("GET", f"{V}/train/{a_jobs['job_id']}")[0] == 200


def test_lists_leave_other_tenants_jobs_out(api, keys, a_jobs):
    status, listed = api.call("POST", "/check_trained_job", {}, key=keys["b"])
    assert status == 200 and listed == []
    status, page = api.call("GET", "/check_trained_job?limit=10", key=keys["b"])
    assert status == 200 and page["jobs"] == []
    status, v15 = api.call("GET", f"{V}/train", key=keys["b"])
    assert status == 200 and v15["jobs"] == []
    status, mine = api.call("POST", "/check_trained_job", {})
    assert a_jobs["job_name"] in {j["TrainingJobName"] for j in mine}


def test_an_admin_key_sees_every_tenants_jobs(api, keys, a_jobs):
    assert api.call("POST", "/status", {"job_name": a_jobs["job_name"]}, key=keys["admin"])[0] == 200
    status, v15 = api.call("GET", f"{V}/train", key=keys["admin"])
    assert a_jobs["job_id"] in {j["job_id"] for j in v15["jobs"]}


def test_a_tenants_own_job_is_its_own(api, keys):
    status, created = api.call("POST", "/create_training_job", create_payload(), key=keys["b"])
    assert status == 200, created
    assert api.call("POST", "/status", {"job_name": created["job_name"]}, key=keys["b"])[0] == 200
    assert api.call("POST", "/status", {"job_name": created["job_name"]})[0] == 404  # not the stage key's


def test_only_the_stage_key_or_an_admin_manages_keys(api, keys):
    status, body = api.call("GET", "/tenants", key=keys["b"])
    assert status == 404 and body["status"] == "error", body
    assert api.call("POST", "/tenants", {"name": "sneaky"}, key=keys["b"])[0] == 404
    status, body = api.call("GET", "/tenants", key=keys["admin"])
    assert status == 200 and {"team-b", "ops"} <= {t["name"] for t in body["tenants"]}
    assert all("key_sha256" not in t and "api_key" not in t for t in body["tenants"])


def test_a_revoked_key_is_refused(api):
    key = make_key(api, "short-lived")
    assert api.call("GET", "/api/version", key=key)[0] == 200
    tenant = next(t for t in api.call("GET", "/tenants")[1]["tenants"] if t["name"] == "short-lived")
    status, body = api.call("DELETE", f"/tenants/{tenant['tenant_id']}")
    assert status == 200 and body["tenant"]["revoked_at"], body
    assert api.call("GET", "/api/version", key=key) == (403, {"message": "Forbidden"})


def test_a_tenants_concurrent_jobs_quota_names_the_quota(api):
    key = make_key(api, "small-team", quotas={"max_concurrent_jobs": 1})
    assert api.call("POST", "/create_training_job", create_payload(), key=key)[0] == 200
    status, body = api.call("POST", "/create_training_job", create_payload(), key=key)
    assert status == 429 and body["status"] == "error", body
    assert "Quota max_concurrent_jobs of tenant small-team is 1" in body["message"]


def test_a_tenants_instance_types_quota_names_the_quota(api):
    key = make_key(api, "cpu-team", quotas={"instance_types": ["ml.m5.large"]})
    status, body = api.call("POST", "/create_training_job", create_payload(), key=key)
    assert status == 429, body
    assert (
        "Quota instance_types of tenant cpu-team: ml.m4.4xlarge is not one of ml.m5.large" in body["message"]
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "Invalid 'name': required"),
        ({"name": "a b"}, "Invalid 'name': must be at most 64 letters"),
        ({"name": "x", "admin": "yes"}, "Invalid 'admin': must be true or false"),
        ({"name": "x", "quotas": {"max_jobs": 1}}, "Invalid 'quotas': unknown quota 'max_jobs'"),
        ({"name": "x", "quotas": {"max_deployments": -1}}, "Invalid 'quotas.max_deployments'"),
    ],
)
def test_a_bad_key_request_is_named(api, body, message):
    status, answer_body = api.call("POST", "/tenants", body)
    assert status == 400 and answer_body["message"].startswith(message), answer_body


def test_a_wrong_key_is_forbidden(api):
    try:
        request = urllib.request.Request(api.url + "/api/version", headers={"x-api-key": "nope"})
        urllib.request.urlopen(request, timeout=10)
    except urllib.error.HTTPError as exc:
        assert exc.code == 403
    else:
        raise AssertionError("a wrong key was let in")
