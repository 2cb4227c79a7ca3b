"""The outbox's leases on both job stores (SQLite locally, DynamoDB on AWS through moto):
one claim per attempt however many senders race, an expired lease is claimed again, and a
sender whose lease expired cannot overwrite the outcome of the one that took over."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from callbacks.delivery import DeliveryResult
from chalicelib.adapters.aws.job_store import DynamoJobStore
from chalicelib.adapters.local.job_store import SqliteJobStore
from chalicelib.ports import Adapters
from chalicelib.services import outbox
from tests.aws.conftest import REGION, create_jobs_table

NOW = 1_900_000_000.0


def dynamo_store():
    client = boto3.client("dynamodb", region_name=REGION)
    return DynamoJobStore(client, create_jobs_table(client))


@pytest.fixture(params=["sqlite", "dynamodb"])
def svc(request, tmp_path, monkeypatch):
    if request.param == "sqlite":
        yield Adapters(SqliteJobStore(tmp_path / "jobs.sqlite3"), None, None, None)
        return
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        yield Adapters(dynamo_store(), None, None, None)


@pytest.fixture
def ended(svc):
    job = {
        "job_id": "j1",
        "job_name": "aif-1",
        "api": "ai_factory",
        "status": "Failed",
        "created_at": "2030-01-01 00:00:00",
    }
    svc.jobs.create(job)
    return outbox.enqueue(svc, job, now=NOW)


def test_enqueue_is_once_per_job(svc, ended):
    again = outbox.enqueue(svc, {**ended, "callback_outbox": None}, now=NOW + 100)
    assert again["callback_outbox"]["next_attempt_at"] == NOW


def test_two_senders_racing_get_one_claim(svc, ended):
    first = outbox.claim(svc, ended, now=NOW)
    second = outbox.claim(svc, ended, now=NOW)  # read the same record before the first wrote
    assert first is not None and second is None
    assert svc.jobs.get("j1")["callback_outbox"]["attempts"] == 1


def test_an_expired_lease_is_claimed_again_and_the_stale_sender_loses(svc, ended):
    stale_job, stale_token = outbox.claim(svc, ended, now=NOW)
    lease = stale_job["callback_outbox"]["lease_until"]
    assert outbox.claim(svc, svc.jobs.get("j1"), now=lease - 1) is None  # still held
    job, token = outbox.claim(svc, svc.jobs.get("j1"), now=lease + 1)
    assert job["callback_outbox"]["attempts"] == 2
    assert outbox.record(svc, stale_job, stale_token, DeliveryResult(False, 1, 503, "HTTP 503")) is None
    done = outbox.record(svc, job, token, DeliveryResult(True, 1, 200))
    assert done["callback_outbox"]["state"] == "delivered"
    assert svc.jobs.get("j1")["callback_outbox"]["state"] == "delivered"
