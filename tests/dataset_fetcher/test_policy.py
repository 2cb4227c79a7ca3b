"""The fetcher sends under the outbound policy: no redirects, checked URLs, headers and
connections (DNS rebinding), timeouts retried. Every connect is checked to be loopback."""

from __future__ import annotations

import pytest

from dataset_fetcher import DatasetError, fetch_all
from tests.callbacks.loopback import FakeDns, guard_loopback
from tests.dataset_fetcher.loopback import DatasetServer

KEY = ("x-api-key", "s3cr3t-dataset-key")
RECORDS = [{"tokens": [f"w{i}"], "tags": ["O"]} for i in range(5)]


@pytest.fixture
def connections(monkeypatch):
    return guard_loopback(monkeypatch)


@pytest.fixture
def sleeps():
    return []


def fetch(url, sleeps, headers=None, **kw):
    return fetch_all(
        url, dict([KEY]) if headers is None else headers, page_size=10, sleep=sleeps.append, **kw
    )


@pytest.mark.parametrize(
    ("status", "reason"), [(301, "Moved Permanently"), (302, "Found"), (307, "Temporary Redirect")]
)
def test_redirect_fails_the_page_and_is_not_followed(sleeps, connections, status, reason):
    with DatasetServer(RECORDS) as elsewhere:
        failures = {0: [(status, {"Location": elsewhere.url})]}
        with DatasetServer(RECORDS, header=KEY, failures=failures) as server:
            with pytest.raises(DatasetError) as info:
                fetch(server.url, sleeps, concurrency=1)
    assert str(info.value) == (
        f"Dataset page at offset 0 failed: HTTP {status} {reason} "
        "(redirects are not followed, so the dataset headers never reach another host)"
    )
    assert server.attempts[0] == 1 and elsewhere.requests == [] and sleeps == []


def test_timeouts_are_retried_then_reported(sleeps, connections):
    with DatasetServer(RECORDS, latency=1.0) as server:
        with pytest.raises(DatasetError) as info:
            fetch(server.url, sleeps, concurrency=1, timeout=0.2, retries=1, backoff=0.1)
    assert (
        str(info.value) == "Dataset page at offset 0 failed: timed out after 0.2 s (gave up after 2 attempts)"
    )
    assert sleeps == [0.1]


def test_rebinding_to_loopback_fails_the_page_before_connecting(sleeps, connections, monkeypatch):
    with DatasetServer(RECORDS, header=KEY) as server:
        FakeDns(monkeypatch, {"data.example.com": [["93.184.216.34"], ["127.0.0.1"]]})
        url = server.url.replace("127.0.0.1", "data.example.com")
        with pytest.raises(DatasetError) as info:
            fetch(url, sleeps, concurrency=1, allow_private=False)
    assert str(info.value).startswith(
        "Dataset page at offset 0 failed: refused at connect time: has the host 'data.example.com', "
        "which points to a private, loopback or other non-global address (127.0.0.1)"
    )
    assert server.requests == [] and connections == []


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            "http://10.0.0.1/pages",
            "Invalid dataset url: it points to a private, loopback or other non-global",
        ),
        ("http://169.254.169.254/latest", "Invalid dataset url: it points to a forbidden address"),
        ("http://user:pw@93.184.216.34/", "Invalid dataset url: it must not contain credentials"),
        ("http://93.184.216.34/a b", "Invalid dataset url: it contains whitespace"),
        ("http://0x7f.1/", "Invalid dataset url: it has the host '0x7f.1', a non-standard IPv4 form"),
    ],
)
def test_refused_url_fails_before_any_connect(sleeps, connections, url, message):
    with pytest.raises(DatasetError, match="^" + message.replace("(", r"\(")):
        fetch(url, sleeps, allow_private=False)
    assert connections == []


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({"x-api:key": KEY[1]}, "Invalid dataset headers: header name 'x-api:key' is not a valid HTTP token"),
        ({"x-api-key": KEY[1] + "\r\n"}, "Invalid dataset headers: header 'x-api-key' contains a line break"),
        ({"x-api-key": KEY[1] + "€"}, "Invalid dataset headers: header 'x-api-key' has a character outside"),
    ],
)
def test_refused_headers_fail_before_any_connect(sleeps, connections, headers, message):
    with DatasetServer(RECORDS) as server:
        with pytest.raises(DatasetError) as info:
            fetch(server.url, sleeps, headers)
    assert str(info.value).startswith(message) and KEY[1] not in str(info.value)
    assert server.requests == [] and connections == []


def test_private_targets_follow_the_stage(sleeps, connections, monkeypatch):
    monkeypatch.delenv("AIFACTORY_ALLOW_PRIVATE_URLS")
    monkeypatch.delenv("AIFACTORY_STAGE", raising=False)
    with DatasetServer(RECORDS, header=KEY) as server:
        with pytest.raises(DatasetError, match="non-global address"):
            fetch(server.url, sleeps)  # the trainer on SageMaker gets no stage: refused
        assert connections == []
        monkeypatch.setenv("AIFACTORY_STAGE", "local")
        assert len(fetch(server.url, sleeps)) == 5
        monkeypatch.setenv("AIFACTORY_ALLOW_PRIVATE_URLS", "false")
        with pytest.raises(DatasetError, match="non-global address"):
            fetch(server.url, sleeps)
