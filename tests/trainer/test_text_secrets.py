import json

import boto3
import pytest
from moto import mock_aws
from trainer.secrets import read_dataset_headers

from contracts.job_config import DataSource

SECRET = {"dataset_headers": {"x-api-key": "k-123"}, "callback_headers": {"x-api-key": "cb"}}


def test_file_kind(tmp_path):
    path = tmp_path / "secret.json"
    path.write_text(json.dumps(SECRET))
    job = DataSource.from_dict({"type": "fetch", "secret": {"kind": "file", "ref": str(path)}})
    assert read_dataset_headers(job) == {"x-api-key": "k-123"}


def test_missing_secret_means_no_headers():
    assert read_dataset_headers(DataSource(type="fetch")) == {}


def test_missing_file_names_the_path(tmp_path):
    job = DataSource(secret={"kind": "file", "ref": str(tmp_path / "nope.json")})
    with pytest.raises(FileNotFoundError, match="nope.json"):
        read_dataset_headers(job)


def test_bad_headers_do_not_leak(tmp_path):
    path = tmp_path / "secret.json"
    path.write_text(json.dumps({"dataset_headers": {"x-api-key": ["k-123"]}}))
    with pytest.raises(ValueError, match="string values") as info:
        read_dataset_headers(DataSource(secret={"kind": "file", "ref": str(path)}))
    assert "k-123" not in str(info.value)


def test_unknown_kind():
    with pytest.raises(ValueError, match="Choose one of: file, secretsmanager"):
        read_dataset_headers(DataSource(secret={"kind": "vault", "ref": "x"}))


@mock_aws
def test_secretsmanager_kind(monkeypatch):
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    client = boto3.client("secretsmanager", region_name="eu-west-1")
    arn = client.create_secret(Name="aif/job-1", SecretString=json.dumps(SECRET))["ARN"]
    job = DataSource(secret={"kind": "secretsmanager", "ref": arn})
    # The region comes from the ARN, so no AWS_DEFAULT_REGION is needed in the container.
    assert read_dataset_headers(job) == {"x-api-key": "k-123"}
