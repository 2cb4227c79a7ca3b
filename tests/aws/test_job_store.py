from __future__ import annotations

import boto3
import pytest

from chalicelib.adapters.aws.job_store import DynamoJobStore
from chalicelib.ports import ConflictError
from tests.aws.conftest import REGION, TABLE


def make_job(n: int, api: str = "v1.5", **extra) -> dict:
    return {
        "job_id": f"20261122{n:06d}-job{n}",
        "job_name": f"aif-job-{n}",
        "api": api,
        "status": "Pending",
        "created_at": f"2026-11-22 {n // 3600:02d}:{n // 60 % 60:02d}:{n % 60:02d}",
        "hyperparameters": {"lr": 0.001, "scales": [0.5, [0, 1]], "nested": {"a": None}},
        "attempts": [],
        **extra,
    }


@pytest.fixture
def store(dynamodb):
    return DynamoJobStore(dynamodb, TABLE)


def test_create_get_round_trips_nested_floats(store, dynamodb):
    job = make_job(1)
    store.create(job)
    assert store.get(job["job_id"]) == job
    item = dynamodb.get_item(TableName=TABLE, Key={"job_id": {"S": job["job_id"]}})["Item"]
    assert item["job_name"] == {"S": "aif-job-1"}
    assert item["api"] == {"S": "v1.5"}
    assert item["status"] == {"S": "Pending"}
    assert item["version"] == {"N": "1"}
    assert store.get("missing") is None


def test_create_twice_conflicts(store):
    store.create(make_job(1))
    with pytest.raises(ConflictError, match="already exists"):
        store.create(make_job(1, status="InProgress"))
    assert store.get(make_job(1)["job_id"])["status"] == "Pending"


def test_get_by_name_uses_the_index(store):
    for n in range(3):
        store.create(make_job(n))
    assert store.get_by_name("aif-job-2")["job_id"] == make_job(2)["job_id"]
    assert store.get_by_name("nope") is None


def test_update_merges_and_bumps_version(store, dynamodb):
    job = make_job(1)
    store.create(job)
    updated = store.update(
        job["job_id"], {"status": "InProgress", "attempts": [{"n": 1}]}, expect={"status": "Pending"}
    )
    assert updated == {**job, "status": "InProgress", "attempts": [{"n": 1}]}
    assert store.get(job["job_id"]) == updated
    item = dynamodb.get_item(TableName=TABLE, Key={"job_id": {"S": job["job_id"]}})["Item"]
    assert item["version"] == {"N": "2"}
    assert item["status"] == {"S": "InProgress"}


def test_update_with_unmet_expectation_conflicts_and_writes_nothing(store):
    job = make_job(1, status="Completed")
    store.create(job)
    with pytest.raises(ConflictError, match="status='Completed'"):
        store.update(job["job_id"], {"status": "Stopping"}, expect={"status": "InProgress"})
    assert store.get(job["job_id"]) == job


def test_update_missing_job_conflicts(store):
    with pytest.raises(ConflictError, match="does not exist"):
        store.update("missing", {"status": "Stopped"})


def test_expect_accepts_a_set_of_allowed_values(store):
    job = make_job(1, status="Pending")
    store.create(job)
    updated = store.update(job["job_id"], {"status": "Stopped"}, expect={"status": ("Pending", "InProgress")})
    assert updated["status"] == "Stopped"
    with pytest.raises(ConflictError):
        store.update(job["job_id"], {"status": "Stopping"}, expect={"status": ["Pending", "InProgress"]})


def test_update_retries_a_lost_race_then_rechecks_expect(store, dynamodb):
    """A concurrent writer slips in between our read and our write, once."""
    job = make_job(1, status="InProgress")
    store.create(job)
    other = DynamoJobStore(boto3.client("dynamodb", region_name=REGION), TABLE)
    fired = []

    def race(**kwargs):
        if not fired:
            fired.append(1)
            other.update(job["job_id"], {"progress": 50})

    dynamodb.meta.events.register("before-call.dynamodb.PutItem", race)
    updated = store.update(job["job_id"], {"status": "Stopping"}, expect={"status": "InProgress"})
    assert fired
    assert updated["progress"] == 50 and updated["status"] == "Stopping"
    assert store.get(job["job_id"]) == updated


def test_update_race_that_breaks_expect_conflicts(store, dynamodb):
    job = make_job(1, status="InProgress")
    store.create(job)
    other = DynamoJobStore(boto3.client("dynamodb", region_name=REGION), TABLE)
    fired = []

    def race(**kwargs):
        if not fired:
            fired.append(1)
            other.update(job["job_id"], {"status": "Completed"})

    dynamodb.meta.events.register("before-call.dynamodb.PutItem", race)
    with pytest.raises(ConflictError, match="Completed"):
        store.update(job["job_id"], {"status": "Stopping"}, expect={"status": "InProgress"})
    assert store.get(job["job_id"])["status"] == "Completed"


def test_list_pages_filters_and_sorts(dynamodb, call_counter):
    store = DynamoJobStore(dynamodb, TABLE, page_size=3)
    created = [make_job(n, api="v1.5" if n % 2 else "ai_factory") for n in (7, 3, 11, 1, 5, 9, 2, 4)]
    for job in created:
        store.create(job)
    scans = call_counter(dynamodb, "Scan")
    everything = store.list()
    assert len(scans) >= 3, "8 items with 3 per page must take several Scan calls"
    assert [j["job_id"] for j in everything] == [
        j["job_id"] for j in sorted(created, key=lambda j: j["created_at"])
    ]
    v15 = store.list(api="v1.5")
    assert {j["job_id"] for j in v15} == {j["job_id"] for j in created if j["api"] == "v1.5"}
    assert [j["created_at"] for j in v15] == sorted(j["created_at"] for j in v15)
    assert store.list(api="other") == []


def test_delete(store):
    store.create(make_job(1))
    store.delete(make_job(1)["job_id"])
    assert store.get(make_job(1)["job_id"]) is None
    assert store.get_by_name("aif-job-1") is None
    store.delete("already-gone")


def test_rejects_a_table_resource(dynamodb):
    table = boto3.resource("dynamodb", region_name=REGION).Table(TABLE)
    with pytest.raises(TypeError, match="not a Table resource"):
        DynamoJobStore(table, TABLE)


def test_every_request_validates_against_the_service_model(dynamodb):
    from tests.aws.service_model import record_requests

    sent = record_requests(dynamodb)
    store = DynamoJobStore(dynamodb, TABLE, page_size=1)
    store.create(
        {"job_id": "j1", "job_name": "aif-1", "api": "ai_factory", "status": "InProgress", "created_at": "x"}
    )
    store.get("j1")
    store.get_by_name("aif-1")
    store.update("j1", {"status": "Completed"}, expect={"status": "InProgress"})
    store.list("ai_factory")
    store.delete("j1")
    names = [name for name, _ in sent]
    assert names[:5] == ["PutItem", "GetItem", "Query", "GetItem", "PutItem"]
    assert set(names[5:-1]) == {"Scan"} and names[-1] == "DeleteItem"  # Scan pages of one item
