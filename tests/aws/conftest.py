"""moto-backed boto3 clients for the AWS adapter tests (no network, no real account)."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from chalicelib.adapters.aws.artifact_store import make_s3_client
from chalicelib.adapters.aws.job_store import table_definition

REGION = "us-east-1"
TABLE = "aifactory-jobs-test"
BUCKET = "aifactory-artifacts-test"


@pytest.fixture(autouse=True)
def fake_credentials(monkeypatch):
    """Never let a test find real credentials or a profile."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)


@pytest.fixture
def aws():
    with mock_aws():
        yield


def create_jobs_table(client, name: str = TABLE) -> str:
    """The one jobs table the tests build: the adapter's own definition, which test_infra
    holds equal to the table infra/cloudformation.yaml declares (keys, lane index, GSIs)."""
    client.create_table(**table_definition(name))
    return name


@pytest.fixture
def dynamodb(aws):
    client = boto3.client("dynamodb", region_name=REGION)
    create_jobs_table(client)
    yield client


@pytest.fixture
def s3(aws):
    client = make_s3_client(region_name=REGION)
    client.create_bucket(Bucket=BUCKET)
    yield client


@pytest.fixture
def sagemaker(aws):
    yield boto3.client("sagemaker", region_name=REGION)


@pytest.fixture
def secretsmanager(aws):
    yield boto3.client("secretsmanager", region_name=REGION)


@pytest.fixture
def call_counter():
    """Counts API calls a client makes (botocore event hooks), to prove paging happened."""

    def attach(client, operation: str) -> list[int]:
        calls: list[int] = []
        client.meta.events.register(f"after-call.*.{operation}", lambda **_: calls.append(1))
        return calls

    return attach
