from __future__ import annotations

import urllib.parse

import pytest
import requests

from chalicelib.adapters.aws.artifact_store import S3ArtifactStore
from tests.aws.conftest import BUCKET


@pytest.fixture
def store(s3):
    return S3ArtifactStore(s3, BUCKET, prefix="dev/")


def test_job_uri_has_no_double_slashes(s3):
    assert S3ArtifactStore(s3, BUCKET).job_uri("j1") == f"s3://{BUCKET}/jobs/j1"
    assert S3ArtifactStore(s3, BUCKET, "/dev/").job_uri("j1") == f"s3://{BUCKET}/dev/jobs/j1"
    assert S3ArtifactStore(s3, BUCKET, "a/b").job_uri("j1") == f"s3://{BUCKET}/a/b/jobs/j1"


def test_put_get_bytes_and_json(store, s3):
    store.put_bytes("jobs/j1/plots/loss.jpg", b"\xff\xd8jpeg")
    store.put_json("jobs/j1/progress.json", {"status": "running", "avg_loss": 0.25, "devices": []})
    assert store.get_bytes("jobs/j1/plots/loss.jpg") == b"\xff\xd8jpeg"
    assert store.get_json("jobs/j1/progress.json") == {"status": "running", "avg_loss": 0.25, "devices": []}
    head = s3.head_object(Bucket=BUCKET, Key="dev/jobs/j1/plots/loss.jpg")
    assert head["ContentType"] == "image/jpeg"
    assert s3.head_object(Bucket=BUCKET, Key="dev/jobs/j1/progress.json")["ContentType"] == "application/json"


def test_missing_objects(store):
    assert store.get_bytes("jobs/nope/progress.json") is None
    assert store.get_json("jobs/nope/losses.json") is None
    assert store.get_json("jobs/nope/losses.json", default=[]) == []
    store.put_bytes("jobs/j1/broken.json", b"{not json")
    assert store.get_json("jobs/j1/broken.json", default={}) == {}


def test_list_keys_pages_and_stays_inside_the_folder(s3, call_counter):
    store = S3ArtifactStore(s3, BUCKET, prefix="dev", page_size=4)
    wanted = [f"jobs/j1/checkpoints/epoch-{n}/metrics.json" for n in range(10)]
    for key in wanted:
        store.put_json(key, {})
    store.put_json("jobs/j10/progress.json", {})  # shares the string prefix "jobs/j1"
    s3.put_object(Bucket=BUCKET, Key="other/jobs/j1/x.json", Body=b"{}")  # outside the root
    lists = call_counter(s3, "ListObjectsV2")
    assert sorted(store.list_keys("jobs/j1")) == sorted(wanted)
    assert len(lists) >= 3, "10 keys with 4 per page must take several ListObjectsV2 calls"
    assert sorted(store.list_keys("jobs/j1/")) == sorted(wanted)
    assert sorted(store.list_keys("")) == sorted([*wanted, "jobs/j10/progress.json"])
    assert list(store.list_keys("jobs/none")) == []


def test_delete_prefix_batches_over_1000_keys(store, s3, call_counter):
    keys = [f"dev/jobs/big/checkpoints/epoch-{n}/model.safetensors" for n in range(1105)]
    for key in keys:
        s3.put_object(Bucket=BUCKET, Key=key, Body=b"")
    store.put_json("jobs/big2/progress.json", {})
    assert sum(1 for _ in store.list_keys("jobs/big")) == 1105  # more than one 1000-key page
    deletes = call_counter(s3, "DeleteObjects")
    store.delete_prefix("jobs/big")
    assert len(deletes) == 2
    assert list(store.list_keys("jobs/big")) == []
    assert store.get_json("jobs/big2/progress.json") == {}


def test_delete_prefix_refuses_the_root(store):
    with pytest.raises(ValueError, match="whole artifact root"):
        store.delete_prefix("/")


def test_download_url_is_presigned(s3):
    store = S3ArtifactStore(s3, BUCKET, prefix="dev", url_expires_s=600)
    url = store.download_url("jobs/j1/checkpoints/epoch-2/model.safetensors")
    parsed = urllib.parse.urlparse(url)
    query = urllib.parse.parse_qs(parsed.query)
    assert BUCKET in url
    assert parsed.path.endswith("dev/jobs/j1/checkpoints/epoch-2/model.safetensors")
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert len(query["X-Amz-Signature"][0]) == 64
    assert query["X-Amz-Expires"] == ["600"]
    assert S3ArtifactStore(s3, BUCKET).url_expires_s == 3600


def test_download_url_serves_the_object(store):
    """moto answers HTTP requests made inside mock_aws, so the URL is fetched for real."""
    store.put_bytes("jobs/j1/model.tar.gz", b"weights")
    response = requests.get(store.download_url("jobs/j1/model.tar.gz"), timeout=10)
    assert response.status_code == 200 and response.content == b"weights"
    assert requests.get(store.download_url("jobs/j1/nope"), timeout=10).status_code == 404


def test_every_request_validates_against_the_service_model(s3):
    from tests.aws.service_model import record_requests

    sent = record_requests(s3)
    store = S3ArtifactStore(s3, BUCKET, "dev", page_size=1)
    store.put_json("jobs/j1/progress.json", {"epoch": 1})
    store.put_bytes("jobs/j1/checkpoints/epoch-1/model.safetensors", b"w")
    store.copy(
        "jobs/j1/checkpoints/epoch-1/model.safetensors", "jobs/j2/checkpoints/epoch-1/model.safetensors"
    )
    store.get_json("jobs/j1/progress.json")
    assert list(store.list_keys("jobs/j1")) == [
        "jobs/j1/checkpoints/epoch-1/model.safetensors",
        "jobs/j1/progress.json",
    ]
    store.delete_prefix("jobs/j1")
    assert {name for name, _ in sent} == {
        "PutObject",
        "CopyObject",
        "GetObject",
        "ListObjectsV2",
        "DeleteObjects",
    }


def test_sizes_and_single_deletes(store):
    store.put_bytes("jobs/j1/checkpoints/epoch-1/model.safetensors", b"w" * 300)
    store.put_bytes("jobs/j1/checkpoints/epoch-1/train_state.pt", b"s" * 200)
    store.put_bytes("jobs/j10/progress.json", b"{}")  # another job's folder: not counted
    assert dict(store.list_sizes("jobs/j1")) == {
        "jobs/j1/checkpoints/epoch-1/model.safetensors": 300,
        "jobs/j1/checkpoints/epoch-1/train_state.pt": 200,
    }
    store.delete("jobs/j1/checkpoints/epoch-1/train_state.pt")
    store.delete("jobs/j1/nothing-here")  # a missing object is no error
    assert list(store.list_keys("jobs/j1")) == ["jobs/j1/checkpoints/epoch-1/model.safetensors"]
