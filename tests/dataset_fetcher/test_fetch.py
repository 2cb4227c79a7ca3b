"""The dataset fetcher against a real loopback endpoint."""

from __future__ import annotations

import logging

import pytest

from dataset_fetcher import DatasetError, fetch_all, iter_records
from tests.dataset_fetcher.loopback import DROP, DatasetServer

KEY = ("x-api-key", "s3cr3t-dataset-key")
HEADERS = {KEY[0]: KEY[1]}


def tagged(n: int) -> list[dict]:
    return [{"tokens": [f"w{i}", "x"], "tags": ["B", "O"]} for i in range(n)]


@pytest.fixture
def sleeps():
    return []


def fetch(server, sleeps, **kw):
    kw.setdefault("page_size", 10)
    kw.setdefault("task", "ml_tagger")
    return fetch_all(server.url, kw.pop("headers", HEADERS), sleep=sleeps.append, **kw)


def test_stops_on_short_page_in_order(sleeps):
    with DatasetServer(tagged(35), header=KEY) as server:
        records = fetch(server, sleeps)
    assert [r["tokens"][0] for r in records] == [f"w{i}" for i in range(35)]
    assert set(server.requests) >= {0, 10, 20, 30}
    assert sleeps == []


def test_stops_on_empty_page(sleeps):
    with DatasetServer(tagged(30), header=KEY) as server:
        records = fetch(server, sleeps, concurrency=1)
    assert len(records) == 30
    assert server.requests == [0, 10, 20, 30]


def test_max_pages_and_begin_offset(sleeps):
    with DatasetServer(tagged(100), header=KEY) as server:
        records = fetch(server, sleeps, begin_offset=15, max_pages=3)
    assert [r["tokens"][0] for r in records] == [f"w{i}" for i in range(15, 45)]
    assert sorted(server.requests) == [15, 25, 35]


@pytest.mark.parametrize("reply", ["data", "items", "records"])
def test_object_replies(sleeps, reply):
    with DatasetServer(tagged(12), header=KEY, reply=reply) as server:
        assert len(fetch(server, sleeps)) == 12


def test_required_header_missing_is_401_without_retry(sleeps):
    with DatasetServer(tagged(5), header=KEY) as server:
        with pytest.raises(DatasetError, match=r"offset 0 failed: HTTP 401 Unauthorized"):
            fetch(server, sleeps, headers={}, concurrency=1)
    assert server.requests == [0] and sleeps == []


def test_transient_failures_then_success(sleeps, caplog):
    failures = {10: [503, (429, {"Retry-After": "3"}), DROP]}
    with DatasetServer(tagged(25), header=KEY, failures=failures) as server:
        with caplog.at_level(logging.WARNING, logger="dataset_fetcher"):
            records = fetch(server, sleeps, backoff=0.25)
    assert len(records) == 25
    assert server.attempts[10] == 4
    assert sleeps == [0.25, 3.0, 1.0]  # backoff, Retry-After, backoff doubled twice
    assert "offset 10" in caplog.text and KEY[1] not in caplog.text


def test_permanent_500_names_the_offset(sleeps):
    with DatasetServer(tagged(50), header=KEY, always_fail={20: 500}) as server:
        with pytest.raises(DatasetError) as info:
            fetch(server, sleeps, retries=3, backoff=0.1)
    message = str(info.value)
    assert message.startswith("Dataset page at offset 20 failed: HTTP 500 Internal Server Error")
    assert "4 attempts" in message
    assert server.attempts[20] == 4
    assert sleeps.count(0.1) >= 1 and 0.4 in sleeps


def test_403_fails_at_once(sleeps):
    with DatasetServer(tagged(50), header=KEY, always_fail={0: 403}) as server:
        with pytest.raises(DatasetError, match="Dataset page at offset 0 failed: HTTP 403 Forbidden"):
            fetch(server, sleeps)
    assert server.attempts[0] == 1 and sleeps == []


def test_malformed_record_names_its_offset(sleeps):
    records = tagged(30)
    records[23] = {"tokens": ["a", "b"], "tags": ["O"]}
    with DatasetServer(records, header=KEY) as server:
        with pytest.raises(DatasetError, match=r"record at offset 23: 2 tokens but 1 tags"):
            fetch(server, sleeps)


def test_not_json_fails(sleeps):
    with DatasetServer(tagged(30), header=KEY, raw_pages={10: b"<html>oops</html>"}) as server:
        with pytest.raises(DatasetError, match=r"offset 10 failed: the reply is not JSON"):
            fetch(server, sleeps)


def test_header_values_never_in_errors(sleeps, caplog):
    # The server echoes a body containing the key; the message must still be scrubbed.
    secret = "echo-me-" + KEY[1]
    with DatasetServer(tagged(5), header=(KEY[0], secret), failures={0: [404]}, echo_headers=True) as server:
        with caplog.at_level(logging.DEBUG), pytest.raises(DatasetError) as info:
            fetch_all(server.url, {KEY[0]: secret}, page_size=10, task="ml_tagger", sleep=sleeps.append)
    assert "HTTP 404 Not Found" in str(info.value) and "request_headers" in str(info.value)
    assert secret not in str(info.value) and secret not in caplog.text
    with DatasetServer(tagged(5), always_fail={0: 503}) as server:
        with caplog.at_level(logging.DEBUG), pytest.raises(DatasetError) as info:
            fetch_all(server.url, HEADERS, page_size=10, retries=2, sleep=sleeps.append)
    assert KEY[1] not in str(info.value) and KEY[1] not in caplog.text


def test_text_records_and_topic_labels(sleeps):
    with DatasetServer([{"text": "book a flight", "tags": ["O", "O", "B-act"]}]) as server:
        assert fetch(server, sleeps) == [{"tokens": ["book", "a", "flight"], "tags": ["O", "O", "B-act"]}]
    with DatasetServer([{"text": "hello world", "label": 3}, {"text": "x", "label": "sports"}]) as server:
        assert fetch(server, sleeps, task="ml_topic") == [
            {"text": "hello world", "label": "3"},
            {"text": "x", "label": "sports"},
        ]


def test_prefetch_overlaps_and_preserves_order(sleeps):
    with DatasetServer(tagged(200), latency=0.05) as server:
        seen = []
        for record in iter_records(server.url, {}, 0, 10, 0, "ml_tagger", concurrency=4, sleep=sleeps.append):
            seen.append(record["tokens"][0])
    assert seen == [f"w{i}" for i in range(200)]
    assert 1 < server.max_active <= 4
    # Speculative pages past the end are requested at most `concurrency` deep.
    assert max(server.requests) <= 200 + 3 * 10


def test_speculative_failure_past_the_end_is_discarded(sleeps):
    with DatasetServer(tagged(25), always_fail={30: 403, 40: 500}) as server:
        assert len(fetch(server, sleeps, concurrency=4)) == 25


def test_consumer_stopping_early_cancels(sleeps):
    with DatasetServer(tagged(1000), latency=0.01) as server:
        records = iter_records(server.url, {}, 0, 10, 0, "ml_tagger", concurrency=3, sleep=sleeps.append)
        first = [next(records) for _ in range(15)]
        records.close()
    assert len(first) == 15 and len(server.requests) <= 6


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"url": "ftp://x/y"}, "only http and https"),
        ({"page_size": 0}, "page_size"),
        ({"begin_offset": -1}, "begin_offset"),
        ({"max_pages": "3"}, "max_pages"),
    ],
)
def test_invalid_arguments(kwargs, message):
    args = {"url": "http://127.0.0.1:9/", "headers": {}, **kwargs}
    with pytest.raises(ValueError, match=message):
        fetch_all(**args)
