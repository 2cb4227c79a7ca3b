"""Images to infer on AWS: S3 objects read with a size cap, and shell patterns over keys."""

from __future__ import annotations

import boto3
import pytest

from chalicelib.adapters.aws.data_store import S3DataStore
from chalicelib.errors import NotFound, ValidationError

DATA = "aifactory-data-test"


@pytest.fixture
def store(aws):
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket=DATA)
    for key in ("cats/1.jpg", "cats/2.jpg", "cats/notes.txt", "dogs/1.jpg", "cats/sub/3.jpg"):
        s3.put_object(Bucket=DATA, Key=key, Body=key.encode())
    return S3DataStore(s3)


def test_reads_an_object(store):
    assert store.read(f"s3://{DATA}/cats/1.jpg", 100) == b"cats/1.jpg"


def test_a_missing_object_is_not_found(store):
    with pytest.raises(NotFound, match="not found"):
        store.read(f"s3://{DATA}/cats/9.jpg", 100)


def test_an_object_over_the_cap_is_refused_before_it_is_read(store):
    with pytest.raises(ValidationError, match="at most 5 are allowed"):
        store.read(f"s3://{DATA}/cats/1.jpg", 5)


def test_patterns_match_keys_in_order(store):
    assert store.glob(f"s3://{DATA}/cats/*.jpg", 10) == [
        f"s3://{DATA}/cats/1.jpg",
        f"s3://{DATA}/cats/2.jpg",
        f"s3://{DATA}/cats/sub/3.jpg",  # like fnmatch, `*` crosses `/` in a key
    ]
    assert store.glob(f"s3://{DATA}/dogs/1.jpg", 10) == [f"s3://{DATA}/dogs/1.jpg"]


def test_a_pattern_stops_one_past_the_limit(store):
    assert len(store.glob(f"s3://{DATA}/*", 2)) == 3
